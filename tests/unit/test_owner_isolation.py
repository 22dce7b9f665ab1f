"""Charlie never sees, changes or learns about alice's objects: every page and
API route that takes an object id answers him 404, and lists leave hers out.

Each id-taking case is checked twice: alice gets a real answer (so the URL is
right and the test can fail), charlie gets a 404 and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from media_jobs.models import Job
from projects.models import Asset, Project, Render
from tests.factories import JobFactory, ProjectFactory
from tests.unit.web_helpers import finished_render, png_bytes, stored_image_asset

pytestmark = pytest.mark.django_db


@dataclass
class World:
    """Alice's objects: a project with an image, a finished render and its job."""

    project: Project
    asset: Asset
    job: Job
    render: Render

    def pk_of(self, target: str) -> int:
        return getattr(self, target).pk

    def snapshot(self) -> tuple:
        self.project.refresh_from_db()
        return (
            self.project.title,
            Project.objects.count(),
            Asset.objects.count(),
            Job.objects.count(),
            Render.objects.count(),
        )


@pytest.fixture
def world(alice) -> World:
    project = ProjectFactory(owner=alice, title="Alice secret video")
    asset = stored_image_asset(project)
    job = JobFactory(project=project)
    render = finished_render(job, asset)
    return World(project=project, asset=asset, job=job, render=render)


def _upload() -> dict:
    return {"files": [SimpleUploadedFile("x.png", png_bytes((1, 2, 3)), "image/png")]}


PROJECT_FORM = {
    "title": "Taken over",
    "style": "cinematic",
    "target_duration": "10",
    "preset": "youtube",
    "output_format": "mp4",
}

# (url name, object it takes, method, data)
PAGES = [
    ("projects:detail", "project", "get", None),
    ("projects:update", "project", "get", None),
    ("projects:update", "project", "post", PROJECT_FORM),
    ("projects:delete", "project", "get", None),
    ("projects:delete", "project", "post", {}),
    ("projects:upload", "project", "post", _upload),
    ("projects:render", "project", "post", {}),
    ("projects:asset_file", "asset", "get", None),
    ("projects:asset_delete", "asset", "post", {}),
    ("projects:render_file", "render", "get", None),
    ("projects:render_thumbnail", "render", "get", None),
    ("projects:render_manifest", "render", "get", None),
    ("jobs:detail", "job", "get", None),
    ("jobs:progress", "job", "get", None),
]

# (path with {pk}, object it takes, method, data)
API_ROUTES = [
    ("/api/projects/{pk}/", "project", "get", None),
    ("/api/projects/{pk}/", "project", "patch", {"title": "Taken over"}),
    ("/api/projects/{pk}/", "project", "put", {"title": "Taken over"}),
    ("/api/projects/{pk}/", "project", "delete", None),
    ("/api/projects/{pk}/assets/", "project", "get", None),
    ("/api/projects/{pk}/render/", "project", "post", {}),
    ("/api/assets/{pk}/", "asset", "get", None),
    ("/api/assets/{pk}/", "asset", "delete", None),
    ("/api/jobs/{pk}/", "job", "get", None),
    ("/api/renders/{pk}/", "render", "get", None),
    ("/api/renders/{pk}/video/", "render", "get", None),
    ("/api/renders/{pk}/thumbnail/", "render", "get", None),
]


def _page_request(client: Client, name: str, pk: int, method: str, data):
    url = reverse(name, args=[pk])
    payload = data() if callable(data) else data
    if method == "get":
        return client.get(url)
    return client.post(url, payload or {})


def _page_id(case) -> str:
    return f"{case[2]}-{case[0]}"


def _api_id(case) -> str:
    return f"{case[2]}-{case[0]}"


@pytest.mark.parametrize("case", PAGES, ids=_page_id)
def test_charlie_gets_a_404_for_every_page_of_alices_objects(
    charlie_client, world, case
):
    name, target, method, data = case
    before = world.snapshot()

    response = _page_request(charlie_client, name, world.pk_of(target), method, data)

    assert response.status_code == 404
    assert world.snapshot() == before
    assert "Alice secret video" not in response.content.decode()


@pytest.mark.parametrize("case", [c for c in PAGES if c[2] == "get"], ids=_page_id)
def test_alice_can_open_every_page_of_her_objects(alice_client, world, case):
    name, target, method, data = case

    response = _page_request(alice_client, name, world.pk_of(target), method, data)

    assert response.status_code == 200


@pytest.mark.parametrize("case", API_ROUTES, ids=_api_id)
def test_charlie_gets_a_404_from_every_api_route_of_alices_objects(
    charlie, world, case
):
    path, target, method, data = case
    api = APIClient()
    api.force_authenticate(charlie)
    before = world.snapshot()

    response = getattr(api, method)(
        path.format(pk=world.pk_of(target)), data, format="json"
    )

    assert response.status_code == 404
    assert world.snapshot() == before


@pytest.mark.parametrize("case", [c for c in API_ROUTES if c[2] == "get"], ids=_api_id)
def test_alice_can_read_every_api_route_of_her_objects(alice, world, case):
    path, target, method, data = case
    api = APIClient()
    api.force_authenticate(alice)

    response = api.get(path.format(pk=world.pk_of(target)))

    assert response.status_code == 200


def test_charlie_cannot_upload_into_alices_project_through_the_api(charlie, world):
    api = APIClient()
    api.force_authenticate(charlie)

    response = api.post(
        f"/api/projects/{world.project.pk}/assets/",
        {"file": SimpleUploadedFile("x.png", png_bytes((4, 5, 6)), "image/png")},
        format="multipart",
    )

    assert response.status_code == 404
    assert Asset.objects.count() == 1


def test_the_project_list_page_shows_charlie_only_his_own(
    charlie_client, charlie, world
):
    ProjectFactory(owner=charlie, title="Charlie own video")

    html = charlie_client.get(reverse("projects:list")).content.decode()

    assert "Charlie own video" in html
    assert "Alice secret video" not in html


@pytest.mark.parametrize(
    "path", ["/api/projects/", "/api/assets/", "/api/jobs/", "/api/renders/"]
)
def test_api_lists_show_charlie_nothing_of_alices(alice, charlie, world, path):
    as_alice, as_charlie = APIClient(), APIClient()
    as_alice.force_authenticate(alice)
    as_charlie.force_authenticate(charlie)

    assert as_alice.get(path).json()["count"] == 1
    assert as_charlie.get(path).json() == {
        "count": 0,
        "next": None,
        "previous": None,
        "results": [],
    }


def test_asset_access_follows_the_project_owner_not_the_assets_owner_copy(
    alice_client, charlie, world
):
    # Asset.owner is a denormalized copy; if it ever disagrees, the project's
    # owner decides who may see the file.
    Asset.objects.filter(pk=world.asset.pk).update(owner=charlie)
    as_charlie = APIClient()
    as_charlie.force_authenticate(charlie)

    assert (
        alice_client.get(
            reverse("projects:asset_file", args=[world.asset.pk])
        ).status_code
        == 200
    )
    assert as_charlie.get(f"/api/assets/{world.asset.pk}/").status_code == 404
    assert as_charlie.get("/api/assets/").json()["count"] == 0
