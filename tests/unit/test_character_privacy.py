"""Characters are biometric data. Charlie never sees, changes or learns about
alice's characters, their photos, face crops or flagged scenes: every page,
file and API route that takes their id answers him 404. No page or API
response carries an embedding or the identity made from them; deleting a
character removes its photos, crops and embeddings; the admin shows none.

Each id-taking case is checked twice: alice gets a real answer (so the URL is
right and the test can fail), charlie gets a 404 and changes nothing.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from characters.models import Character, FaceEmbedding, ReferenceImage
from media_jobs.models import Job
from projects.models import Asset, Project, Scene
from tests.factories import JobFactory
from tests.unit.character_helpers import make_scenes, mirrored, register_character
from tests.unit.web_helpers import files_under, png_bytes, stored_image_asset

pytestmark = pytest.mark.django_db

SECRET_KEYS = {"vector", "vectors", "identity", "identity_key", "embedding",
               "embeddings"}  # fmt: skip


@dataclass
class World:
    """Alice's character (registered for real) and a render of hers held
    for review, whose flagged scene shows that character."""

    character: Character
    reference: ReferenceImage
    project: Project
    asset: Asset
    other_photo: Asset
    job: Job
    scene: Scene

    def pk_of(self, target: str) -> int:
        return getattr(self, target).pk

    def snapshot(self) -> tuple:
        self.character.refresh_from_db()
        self.scene.refresh_from_db()
        self.job.refresh_from_db()
        return (
            self.character.name,
            self.character.threshold,
            self.character.identity_key,
            Character.objects.count(),
            ReferenceImage.objects.count(),
            FaceEmbedding.objects.count(),
            Job.objects.count(),
            Asset.objects.count(),
            (self.scene.review, self.scene.seed, self.scene.image_id),
            self.job.status,
            len(files_under(django_settings.MEDIA_ROOT)),
        )


@pytest.fixture
def world(alice, sample_files, tmp_path) -> World:
    character = register_character(
        alice,
        "Alice secret face",
        [
            (sample_files["astronaut"], "astronaut.png"),
            (mirrored(sample_files["astronaut"], tmp_path), "mirrored.png"),
        ],
    )
    project = Project.objects.create(owner=alice, title="Alice secret video")
    asset = stored_image_asset(project, name="one.png", color=(5, 6, 7))
    other_photo = stored_image_asset(project, name="two.png", color=(8, 9, 10))
    job = JobFactory(project=project, status=Job.Status.REVIEW)
    (scene,) = make_scenes(project, job, character, asset, [("flagged", 0.4)])
    return World(
        character=character,
        reference=character.references.get(original_name="astronaut.png"),
        project=project,
        asset=asset,
        other_photo=other_photo,
        job=job,
        scene=scene,
    )


@pytest.fixture
def charlie_browser(charlie) -> Client:
    browser = Client()
    browser.force_login(charlie)
    return browser


@pytest.fixture
def alice_browser(alice) -> Client:
    browser = Client()
    browser.force_login(alice)
    return browser


def _photo() -> dict:
    return {"photos": [SimpleUploadedFile("x.png", png_bytes((1, 2, 3)), "image/png")]}


SETTINGS_FORM = {"name": "Taken over", "description": "", "threshold": "0.5"}

# (url name, object it takes, method, data)
PAGES = [
    ("characters:detail", "character", "get", None),
    ("characters:references", "character", "get", None),
    ("characters:update", "character", "get", None),
    ("characters:update", "character", "post", SETTINGS_FORM),
    ("characters:reference_add", "character", "post", _photo),
    ("characters:delete", "character", "get", None),
    ("characters:delete", "character", "post", {}),
    ("characters:reference_photo", "reference", "get", None),
    ("characters:reference_crop", "reference", "get", None),
    ("characters:reference_remove", "reference", "post", {}),
    ("jobs:scene_preview", "scene", "get", None),
    ("projects:review_approve", "scene", "post", {}),
    ("projects:review_regenerate", "scene", "post", {"seed": "5"}),
    ("projects:review_replace", "scene", "post", lambda: {"image": "0"}),
    ("projects:character", "project", "post", {"review_policy": "continue"}),
]

# (path with {pk} and {ref}, object {pk} stands for, method, data)
API_ROUTES = [
    ("/api/characters/{pk}/", "character", "get", None),
    ("/api/characters/{pk}/", "character", "patch", {"name": "Taken over"}),
    ("/api/characters/{pk}/", "character", "put", {"name": "Taken over"}),
    ("/api/characters/{pk}/", "character", "delete", None),
    ("/api/characters/{pk}/references/", "character", "get", None),
    ("/api/characters/{pk}/references/{ref}/", "character", "get", None),
    ("/api/characters/{pk}/references/{ref}/", "character", "delete", None),
    ("/api/characters/{pk}/scenes/", "character", "get", None),
    ("/api/reviews/{pk}/", "scene", "get", None),
    ("/api/reviews/{pk}/approve/", "scene", "post", {}),
    ("/api/reviews/{pk}/regenerate/", "scene", "post", {"seed": 5}),
    ("/api/reviews/{pk}/replace/", "scene", "post", {"image": 0}),
]


def _page_request(client: Client, world: World, case):
    name, target, method, data = case
    url = reverse(name, args=[world.pk_of(target)])
    payload = data() if callable(data) else data
    if method == "get":
        return client.get(url)
    return client.post(url, payload or {})


def _api_request(client: APIClient, world: World, case):
    path, target, method, data = case
    url = path.format(pk=world.pk_of(target), ref=world.reference.pk)
    return getattr(client, method)(url, data, format="json")


def _id(case) -> str:
    return f"{case[2]}-{case[0]}"


@pytest.mark.parametrize("case", PAGES, ids=_id)
def test_charlie_gets_a_404_for_every_page_and_file_of_alices_characters(
    charlie_browser, world, case
):
    before = world.snapshot()

    response = _page_request(charlie_browser, world, case)

    assert response.status_code == 404
    assert world.snapshot() == before
    assert b"Alice secret" not in b"".join(
        response.streaming_content if response.streaming else [response.content]
    )


@pytest.mark.parametrize("case", [c for c in PAGES if c[2] == "get"], ids=_id)
def test_alice_can_open_every_page_and_file_of_her_characters(
    alice_browser, world, case
):
    assert _page_request(alice_browser, world, case).status_code == 200


@pytest.mark.parametrize("case", API_ROUTES, ids=_id)
def test_charlie_gets_a_404_from_every_api_route_of_alices_characters(
    charlie, world, case
):
    api = APIClient()
    api.force_authenticate(charlie)
    before = world.snapshot()

    response = _api_request(api, world, case)

    assert response.status_code == 404
    assert world.snapshot() == before


@pytest.mark.parametrize("case", [c for c in API_ROUTES if c[2] == "get"], ids=_id)
def test_alice_can_read_every_api_route_of_her_characters(alice, world, case):
    api = APIClient()
    api.force_authenticate(alice)

    assert _api_request(api, world, case).status_code == 200


def test_lists_and_the_queue_show_charlie_nothing_of_alices(
    charlie, charlie_browser, world
):
    api = APIClient()
    api.force_authenticate(charlie)

    gallery = charlie_browser.get(reverse("characters:list")).content.decode()
    queue = charlie_browser.get(reverse("projects:review_queue")).content.decode()

    assert api.get("/api/characters/").json()["count"] == 0
    assert api.get("/api/reviews/").json()["count"] == 0
    assert "Alice secret" not in gallery and "Alice secret" not in queue
    assert "Nothing to review" in queue


def test_charlie_cannot_give_his_project_alices_character(charlie, world):
    api = APIClient()
    api.force_authenticate(charlie)
    his = Project.objects.create(owner=charlie, title="His")

    response = api.patch(
        f"/api/projects/{his.pk}/", {"character": world.character.pk}, format="json"
    )

    his.refresh_from_db()
    assert response.status_code == 400
    assert his.character is None


# --- no embedding leaves the server -------------------------------------------------


def _secrets(world: World) -> list[bytes]:
    """The stored vectors and the identity, and how a leak could spell them."""
    raw = [bytes(e.vector) for e in FaceEmbedding.objects.all()]
    world.character.refresh_from_db()
    raw.append(bytes(world.character.identity))
    assert len(raw) == 3 and all(len(r) >= 128 for r in raw)
    spelled = []
    for data in raw:
        spelled += [
            data[:32],
            base64.b64encode(data)[:32],
            base64.urlsafe_b64encode(data)[:32],
            data.hex()[:32].encode(),
            data[:32].hex(" ").encode(),
        ]
    return spelled


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def test_no_page_or_api_response_carries_an_embedding(alice, alice_browser, world):
    api = APIClient()
    api.force_authenticate(alice)
    pk, ref = world.character.pk, world.reference.pk
    pages = [
        reverse("characters:list"),
        reverse("characters:detail", args=[pk]),
        reverse("characters:references", args=[pk]),
        reverse("projects:review_queue"),
        reverse("projects:detail", args=[world.project.pk]),
        reverse("jobs:detail", args=[world.job.pk]),
    ]
    api_paths = [
        "/api/characters/",
        f"/api/characters/{pk}/",
        f"/api/characters/{pk}/references/",
        f"/api/characters/{pk}/references/{ref}/",
        f"/api/characters/{pk}/scenes/",
        "/api/reviews/",
        f"/api/reviews/{world.scene.pk}/",
        f"/api/projects/{world.project.pk}/",
    ]
    secrets = _secrets(world)

    bodies = [alice_browser.get(url).content for url in pages]
    documents = [api.get(path).json() for path in api_paths]
    bodies += [json.dumps(document).encode() for document in documents]

    for body in bodies:
        assert not [s for s in secrets if s in body]
    keys = set().union(*(_keys(d) for d in documents))
    assert "references" in keys and "gate" in keys  # the documents were real
    assert not keys & SECRET_KEYS


# --- deletion and the admin -------------------------------------------------------


def _character_files() -> list[Path]:
    return files_under(Path(django_settings.MEDIA_ROOT) / "characters")


def test_deleting_a_character_removes_its_photos_crops_and_embeddings(
    alice_browser, world, django_capture_on_commit_callbacks
):
    assert len(_character_files()) == 4  # two photos, two face crops

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_browser.post(
            reverse("characters:delete", args=[world.character.pk])
        )

    world.scene.refresh_from_db()
    assert response.status_code == 303
    assert _character_files() == []
    assert not Character.objects.exists()
    assert not ReferenceImage.objects.exists()
    assert not FaceEmbedding.objects.exists()
    # The scene that was checked against her stays, without the character.
    assert world.scene.character is None


def test_deleting_a_character_through_the_api_removes_its_files_too(
    alice, world, django_capture_on_commit_callbacks
):
    api = APIClient()
    api.force_authenticate(alice)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"/api/characters/{world.character.pk}/")

    assert response.status_code == 204
    assert _character_files() == []
    assert not FaceEmbedding.objects.exists()


def test_the_admin_has_no_character_models(admin_client):
    registered = set(admin.site._registry)
    index = admin_client.get(reverse("admin:index")).content.decode()

    assert not registered & {Character, ReferenceImage, FaceEmbedding}
    assert "/admin/characters/" not in index
    assert admin_client.get("/admin/characters/character/").status_code == 404
