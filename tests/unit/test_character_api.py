"""The characters API: create, read, rename and delete characters, add and
remove reference photos, the scores of the scenes checked against a
character, and the character fields of a project."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from characters.jobs import registrations
from characters.models import Character, FaceEmbedding, ReferenceImage
from characters.registration import create_character
from media_jobs.models import Job
from projects.models import Project, Scene
from tests.factories import JobFactory, SceneFactory
from tests.unit.character_helpers import mirrored, photo_upload
from tests.unit.web_helpers import HTML_POLYGLOT, stored_image_asset

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


# --- characters -----------------------------------------------------------------


def test_creating_a_character_makes_the_caller_its_owner(api, alice, bob):
    response = api.post(
        "/api/characters/",
        {
            "name": "Ann",
            "description": "the astronaut",
            "threshold": 0.8,
            "owner": bob.pk,
            "provider": "insightface",
            "auto_created": True,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    character = Character.objects.get(pk=body["id"])
    assert character.owner == alice
    assert (character.provider, character.threshold, character.auto_created) == (
        "dlib",
        0.8,
        False,
    )
    assert body["threshold_used"] == 0.8
    assert (body["is_ready"], body["references"], body["registration"]) == (
        False,
        [],
        None,
    )


def test_a_threshold_outside_zero_to_one_is_a_400(api):
    response = api.post(
        "/api/characters/", {"name": "Ann", "threshold": 1.2}, format="json"
    )

    assert response.status_code == 400
    assert "threshold" in response.json()
    assert not Character.objects.exists()


def test_a_character_shows_its_identity_summary_and_references(api, ann):
    body = api.get(f"/api/characters/{ann.pk}/").json()

    assert body["provider"] == "dlib"
    assert (body["threshold"], body["threshold_used"]) == (None, 0.91)
    assert (body["reference_count"], body["is_ready"], body["auto_created"]) == (
        2,
        True,
        False,
    )
    assert body["spread"] == pytest.approx(ann.spread)
    refs = {r["original_name"]: r for r in body["references"]}
    assert {name: r["status"] for name, r in refs.items()} == {
        "astronaut.png": "accepted",
        "mirrored.png": "accepted",
        "hopper.jpg": "rejected",
    }
    hopper = refs["hopper.jpg"]
    assert hopper["notes"][0]["code"] == "different_person"
    assert hopper["notes"][0]["level"] == "reject"
    assert hopper["quality"]["face_px"] == 216.0
    assert len(hopper["face_box"]) == 4
    reference = ReferenceImage.objects.get(pk=hopper["id"])
    assert hopper["file_url"] == f"/characters/photos/{reference.pk}/file/"
    assert hopper["crop_url"] == f"/characters/photos/{reference.pk}/face.jpg"


def test_the_character_list_gives_each_its_latest_registration(api, alice, ann):
    create_character(alice, "Bea")
    Job.objects.create(
        owner=alice, kind=Job.Kind.CHARACTER, params={"character": ann.pk}
    )
    newer = Job.objects.create(
        owner=alice,
        kind=Job.Kind.CHARACTER,
        params={"character": ann.pk},
        status=Job.Status.SUCCEEDED,
    )

    listed = api.get("/api/characters/").json()

    by_name = {c["name"]: c for c in listed["results"]}
    assert listed["count"] == 2
    assert by_name["Ann"]["registration"] == {"id": newer.pk, "status": "succeeded"}
    assert by_name["Bea"]["registration"] is None


def test_renaming_and_lowering_the_threshold_remakes_the_identity(api, ann):
    response = api.patch(
        f"/api/characters/{ann.pk}/",
        {"name": "Ann B.", "threshold": 0.85},
        format="json",
    )

    body = response.json()
    assert response.status_code == 200
    assert (body["name"], body["threshold_used"], body["reference_count"]) == (
        "Ann B.",
        0.85,
        3,
    )
    assert {r["status"] for r in body["references"]} == {"accepted"}


def test_deleting_a_character_through_the_api(api, ann):
    response = api.delete(f"/api/characters/{ann.pk}/")

    assert response.status_code == 204
    assert not Character.objects.exists()
    assert not ReferenceImage.objects.exists()
    assert not FaceEmbedding.objects.exists()


# --- references -----------------------------------------------------------------


def test_adding_several_photos_is_a_202_with_each_result_and_the_job(
    api, ann, sample_files, tmp_path
):
    response = api.post(
        f"/api/characters/{ann.pk}/references/",
        {
            "files": [
                photo_upload(mirrored(sample_files["hopper"], tmp_path), "h2.png"),
                SimpleUploadedFile("evil.png", HTML_POLYGLOT, "image/png"),
            ]
        },
        format="multipart",
    )

    body = response.json()
    assert response.status_code == 202, body
    assert [r["original_name"] for r in body["references"]] == ["h2.png"]
    assert body["references"][0]["status"] == "pending"
    assert body["references"][0]["crop_url"] is None
    assert [e["file"] for e in body["errors"]] == ["evil.png"]
    job = registrations(ann).get()
    assert (body["job"], job.status) == (job.pk, "queued")


def test_a_single_photo_may_be_sent_as_file(api, alice, sample_files):
    character = create_character(alice, "Ann")

    response = api.post(
        f"/api/characters/{character.pk}/references/",
        {"file": photo_upload(sample_files["astronaut"])},
        format="multipart",
    )

    assert response.status_code == 202
    assert character.references.count() == 1


def test_adding_no_good_photo_is_a_400_and_starts_no_job(api, ann):
    nothing = api.post(f"/api/characters/{ann.pk}/references/", {}, format="multipart")
    bad = api.post(
        f"/api/characters/{ann.pk}/references/",
        {"files": [SimpleUploadedFile("evil.png", HTML_POLYGLOT, "image/png")]},
        format="multipart",
    )

    assert (nothing.status_code, bad.status_code) == (400, 400)
    assert bad.json()["job"] is None
    assert bad.json()["errors"][0]["file"] == "evil.png"
    assert ann.references.count() == 3
    assert not registrations(ann).exists()


def test_listing_reading_and_removing_one_reference(api, ann):
    mirror = ann.references.get(original_name="mirrored.png")

    listed = api.get(f"/api/characters/{ann.pk}/references/").json()
    read = api.get(f"/api/characters/{ann.pk}/references/{mirror.pk}/")
    removed = api.delete(f"/api/characters/{ann.pk}/references/{mirror.pk}/")
    again = api.delete(f"/api/characters/{ann.pk}/references/{mirror.pk}/")

    ann.refresh_from_db()
    assert [r["original_name"] for r in listed] == [
        "astronaut.png",
        "mirrored.png",
        "hopper.jpg",
    ]
    assert read.json()["status"] == "accepted"
    assert (removed.status_code, again.status_code) == (204, 404)
    assert ann.reference_count == 1
    assert not FaceEmbedding.objects.filter(reference_id=mirror.pk).exists()


def test_a_reference_of_another_character_is_not_found_under_this_one(api, alice, ann):
    bea = create_character(alice, "Bea")
    ref = ann.references.first()

    response = api.delete(f"/api/characters/{bea.pk}/references/{ref.pk}/")

    assert response.status_code == 404
    assert ReferenceImage.objects.filter(pk=ref.pk).exists()


# --- scenes ---------------------------------------------------------------------


def test_the_scenes_checked_against_a_character_with_their_scores(api, ann, project):
    image = stored_image_asset(project)
    job = JobFactory(project=project, status=Job.Status.REVIEW)
    for index, (review, score) in enumerate([("passed", 0.95), ("flagged", 0.4)]):
        SceneFactory(
            job=job,
            index=index,
            image=image,
            status=Scene.Status.PENDING,
            character=ann,
            consistency=score,
            review=review,
            tries=3 if review == "flagged" else 1,
            gate={"threshold": 0.91},
        )

    body = api.get(f"/api/characters/{ann.pk}/scenes/").json()

    assert body["count"] == 2
    assert [
        (s["index"], s["consistency"], s["review"], s["tries"], s["threshold"])
        for s in body["results"]
    ] == [(0, 0.95, "passed", 1, 0.91), (1, 0.4, "flagged", 3, 0.91)]
    assert body["results"][0]["project_title"] == "Summer song"
    assert body["results"][0]["job"] == job.pk


# --- the project's character ----------------------------------------------------


def test_a_project_takes_one_of_the_callers_characters(api, ann, project):
    response = api.patch(
        f"/api/projects/{project.pk}/",
        {"character": ann.pk, "auto_character": False, "review_policy": "continue"},
        format="json",
    )

    project.refresh_from_db()
    assert response.status_code == 200, response.content
    assert (response.json()["character"], response.json()["review_policy"]) == (
        ann.pk,
        "continue",
    )
    assert (project.character, project.auto_character, project.review_policy) == (
        ann,
        False,
        "continue",
    )


def test_a_project_refuses_another_users_character(api, charlie, project):
    theirs = create_character(charlie, "Theirs")

    response = api.patch(
        f"/api/projects/{project.pk}/", {"character": theirs.pk}, format="json"
    )

    project.refresh_from_db()
    assert response.status_code == 400
    assert "character" in response.json()
    assert project.character is None


def test_a_project_character_can_be_cleared_for_quick_mode(api, ann, project):
    Project.objects.filter(pk=project.pk).update(character=ann)

    response = api.patch(
        f"/api/projects/{project.pk}/",
        {"character": None, "auto_character": True},
        format="json",
    )

    project.refresh_from_db()
    assert response.status_code == 200
    assert (project.character, project.auto_character) == (None, True)


def test_the_schema_documents_characters_and_reviews(api):
    schema = yaml.safe_load(api.get("/api/schema/").content)

    validate_schema(schema)
    for path in (
        "/api/characters/",
        "/api/characters/{id}/",
        "/api/characters/{id}/references/",
        "/api/characters/{id}/references/{ref_id}/",
        "/api/characters/{id}/scenes/",
        "/api/reviews/",
        "/api/reviews/{id}/approve/",
        "/api/reviews/{id}/regenerate/",
        "/api/reviews/{id}/replace/",
    ):
        assert path in schema["paths"], path
    project = schema["components"]["schemas"]["Project"]["properties"]
    assert {"character", "auto_character", "review_policy"} <= set(project)
    character = schema["components"]["schemas"]["Character"]["properties"]
    assert not {"identity", "identity_key", "vector", "embeddings"} & set(character)


def test_reference_files_from_the_api_urls_open_for_the_owner(client, alice, ann):
    client.force_login(alice)
    api = APIClient()
    api.force_authenticate(alice)
    ref = api.get(f"/api/characters/{ann.pk}/").json()["references"][0]

    assert client.get(ref["file_url"]).status_code == 200
    assert client.get(ref["crop_url"]).status_code == 200
    assert Path(ref["file_url"]).parts[1] == "characters"
