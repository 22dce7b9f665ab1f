"""The REST API: projects, uploads, renders, jobs, token auth and the schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from media_jobs.models import Job
from projects.models import Asset, Project
from tests.conftest import PASSWORD
from tests.factories import JobFactory, ProjectFactory
from tests.unit.web_helpers import (
    HTML_POLYGLOT,
    files_under,
    finished_render,
    media_files,
    multipart_body,
    png_bytes,
    stored_audio_asset,
    stored_image_asset,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


# --- projects -------------------------------------------------------------------------


def test_creating_a_project_makes_the_caller_its_owner(api, alice, bob):
    response = api.post(
        "/api/projects/",
        {
            "title": "Night drive",
            "preset": "shorts",
            "output_format": "webm",
            "owner": bob.pk,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    project = Project.objects.get(pk=response.json()["id"])
    assert project.owner == alice
    assert response.json()["owner"] == "alice"
    assert (project.preset, project.output_format, project.status) == (
        "shorts",
        "webm",
        "draft",
    )


def test_a_project_with_an_unknown_preset_is_refused(api):
    response = api.post(
        "/api/projects/", {"title": "x", "preset": "imax"}, format="json"
    )

    assert response.status_code == 400
    assert "preset" in response.json()
    assert not Project.objects.exists()


def test_listing_retrieving_updating_and_deleting_a_project(api, project):
    listed = api.get("/api/projects/").json()
    retrieved = api.get(f"/api/projects/{project.pk}/").json()
    patched = api.patch(
        f"/api/projects/{project.pk}/", {"target_duration": 45}, format="json"
    )
    deleted = api.delete(f"/api/projects/{project.pk}/")

    assert listed["count"] == 1 and listed["results"][0]["id"] == project.pk
    assert retrieved["title"] == "Summer song"
    assert patched.status_code == 200 and patched.json()["target_duration"] == 45.0
    assert deleted.status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()


def test_a_project_with_a_job_under_way_is_a_409_and_stays(api, project):
    job = JobFactory(project=project, status=Job.Status.QUEUED)

    refused = api.delete(f"/api/projects/{project.pk}/")
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
    deleted = api.delete(f"/api/projects/{project.pk}/")

    assert refused.status_code == 409
    assert f"(#{job.pk})" in refused.json()["detail"]
    assert deleted.status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()


def test_the_status_of_a_project_cannot_be_set_by_the_client(api, project):
    api.patch(f"/api/projects/{project.pk}/", {"status": "rendered"}, format="json")

    project.refresh_from_db()
    assert project.status == Project.Status.DRAFT


# --- assets ---------------------------------------------------------------------------


def test_uploading_a_png_and_a_wav_through_the_api(api, project, sample_files):
    url = f"/api/projects/{project.pk}/assets/"
    image = api.post(
        url,
        {"file": SimpleUploadedFile("face.png", png_bytes(), "image/png")},
        format="multipart",
    )
    song = api.post(
        url,
        {
            "file": SimpleUploadedFile(
                "song.wav", Path(sample_files["song"]).read_bytes(), "audio/wav"
            )
        },
        format="multipart",
    )
    listed = api.get(url)

    assert image.status_code == 201, image.content
    assert song.status_code == 201, song.content
    assert (image.json()["kind"], image.json()["mime"], image.json()["width"]) == (
        "image",
        "image/png",
        64,
    )
    assert song.json()["kind"] == "audio" and song.json()["duration"] > 1
    assert [a["original_name"] for a in listed.json()] == ["face.png", "song.wav"]
    assert len(media_files()) == 2


def test_an_html_file_named_png_is_a_400_with_the_reason_and_leaves_no_file(
    api, project
):
    response = api.post(
        f"/api/projects/{project.pk}/assets/",
        {"file": SimpleUploadedFile("cat.png", HTML_POLYGLOT, "image/png")},
        format="multipart",
    )

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["file"]
    assert "looks like a web page (HTML)" in body["file"][0]
    assert not Asset.objects.exists()
    assert media_files() == []


def test_an_upload_without_a_file_is_a_400(api, project):
    response = api.post(f"/api/projects/{project.pk}/assets/", {}, format="multipart")

    assert response.status_code == 400
    assert "file" in response.json()


def test_an_api_upload_with_a_path_in_its_name_stays_inside_the_media_folder(
    api, project, tmp_path
):
    body, content_type = multipart_body(
        "file", "../../evil.png", png_bytes(), "image/png"
    )

    response = api.generic(
        "POST", f"/api/projects/{project.pk}/assets/", body, content_type=content_type
    )

    assert response.status_code == 201, response.content
    asset = Asset.objects.get()
    media_root = Path(django_settings.MEDIA_ROOT).resolve()
    assert Path(asset.file.path).resolve().parent == media_root / "assets" / str(
        project.owner_id
    )
    assert "evil" not in asset.file.name
    assert [p for p in files_under(tmp_path) if "evil" in p.name] == []
    assert not (media_root.parent.parent / "evil.png").exists()


def test_deleting_an_asset_removes_its_stored_file(api, project):
    asset = stored_image_asset(project)
    stored = Path(asset.file.path)
    assert stored.exists()

    response = api.delete(f"/api/assets/{asset.pk}/")

    assert response.status_code == 204
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert not stored.exists()


def test_an_asset_used_by_a_render_cannot_be_deleted(api, project):
    asset = stored_image_asset(project)
    finished_render(JobFactory(project=project), asset)

    response = api.delete(f"/api/assets/{asset.pk}/")

    assert response.status_code == 409
    assert Path(asset.file.path).exists()


def test_the_song_of_a_render_under_way_cannot_be_deleted(api, ready_project):
    job = api.post(f"/api/projects/{ready_project.pk}/render/", {}, format="json")
    song = ready_project.music()

    response = api.delete(f"/api/assets/{song.pk}/")

    assert response.status_code == 409
    assert f"is the song of render #{job.json()['id']}" in response.json()["detail"]
    assert Asset.objects.filter(pk=song.pk).exists()
    assert Path(song.file.path).exists()


def test_a_newer_song_the_running_render_does_not_use_can_be_deleted(
    api, ready_project
):
    api.post(f"/api/projects/{ready_project.pk}/render/", {}, format="json")
    newer = stored_audio_asset(ready_project)

    response = api.delete(f"/api/assets/{newer.pk}/")

    assert response.status_code == 204
    assert not Asset.objects.filter(pk=newer.pk).exists()


def test_a_render_from_before_the_song_was_frozen_protects_the_current_song(
    api, ready_project
):
    # Such a job reads the project's newest song when its stage runs.
    JobFactory(project=ready_project, status=Job.Status.RUNNING, params={})
    song = ready_project.music()

    response = api.delete(f"/api/assets/{song.pk}/")

    assert response.status_code == 409
    assert Asset.objects.filter(pk=song.pk).exists()


def test_a_finished_render_does_not_protect_its_song(api, ready_project):
    job = api.post(f"/api/projects/{ready_project.pk}/render/", {}, format="json")
    Job.objects.filter(pk=job.json()["id"]).update(status=Job.Status.FAILED)
    song = ready_project.music()

    assert api.delete(f"/api/assets/{song.pk}/").status_code == 204


# --- renders and jobs -----------------------------------------------------------------


def test_rendering_a_project_without_material_is_a_400(api, project):
    response = api.post(f"/api/projects/{project.pk}/render/", {}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Upload at least one photo and a song before rendering."
    }
    assert not Job.objects.exists()


def test_rendering_returns_202_with_the_queued_job_and_the_overrides(
    api, ready_project
):
    response = api.post(
        f"/api/projects/{ready_project.pk}/render/",
        {"preset": "square", "format": "gif", "duration": 8},
        format="json",
    )

    assert response.status_code == 202, response.content
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert body["status"] == "queued" and job.status == Job.Status.QUEUED
    assert body["project"] == ready_project.pk
    assert (job.params["preset"], job.params["format"], job.params["duration"]) == (
        "square",
        "gif",
        8.0,
    )
    assert body["render"] is None
    assert body["scenes"]["total"] == 0


@pytest.mark.parametrize(
    "overrides",
    [{"preset": "imax"}, {"format": "avi"}, {"duration": 1}, {"duration": "long"}],
)
def test_render_overrides_outside_the_choices_are_refused(
    api, ready_project, overrides
):
    response = api.post(
        f"/api/projects/{ready_project.pk}/render/", overrides, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()) == set(overrides)
    assert not Job.objects.exists()


def test_a_render_already_under_way_is_a_409_naming_it(api, ready_project):
    first = api.post(f"/api/projects/{ready_project.pk}/render/", {}, format="json")
    second = api.post(f"/api/projects/{ready_project.pk}/render/", {}, format="json")

    assert second.status_code == 409
    assert second.json()["id"] == first.json()["id"]
    assert Job.objects.count() == 1


def test_a_job_lists_its_fields_scene_summary_and_render(api, project):
    job = JobFactory(project=project, task_id="abc")
    render = finished_render(job, stored_image_asset(project))

    listed = api.get("/api/jobs/").json()
    body = api.get(f"/api/jobs/{job.pk}/").json()

    assert listed["count"] == 1
    assert set(body) == {
        "id",
        "project",
        "kind",
        "priority",
        "batch",
        "parent",
        "attempts",
        "dispatched_at",
        "stages",
        "tasks",
        "status",
        "progress",
        "stage",
        "message",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "task_id",
        "scenes",
        "render",
    }
    assert body["status"] == "succeeded" and body["progress"] == 1.0
    assert body["scenes"] == {
        "total": 1,
        "pending": 0,
        "running": 0,
        "done": 1,
        "failed": 0,
        "cached": 1,
    }
    assert body["render"] == render.pk
    assert body["task_id"] == "abc"


def test_jobs_can_be_filtered_by_project_and_status(api, alice, project):
    other = ProjectFactory(owner=alice)
    JobFactory(project=project, status=Job.Status.FAILED)
    kept = JobFactory(project=other)

    by_project = api.get(f"/api/jobs/?project={other.pk}").json()
    by_status = api.get("/api/jobs/?status=queued").json()

    assert [j["id"] for j in by_project["results"]] == [kept.pk]
    assert [j["id"] for j in by_status["results"]] == [kept.pk]


def test_a_render_shows_its_metadata_manifest_and_downloads(api, project):
    job = JobFactory(project=project)
    render = finished_render(job, stored_image_asset(project))

    body = api.get(f"/api/renders/{render.pk}/").json()
    video = api.get(f"/api/renders/{render.pk}/video/")

    assert body["manifest"] == {"manifest_version": 1, "job": job.pk, "cuts": []}
    assert (body["width"], body["height"], body["output_format"]) == (640, 360, "mp4")
    assert body["video_url"] == f"/api/renders/{render.pk}/video/"
    assert video.status_code == 200
    assert video["Content-Type"] == "video/mp4"
    assert b"".join(video.streaming_content).startswith(b"\x00\x00\x00\x18ftyp")


def test_api_downloads_carry_the_same_protective_headers_as_the_pages(api, project):
    render = finished_render(JobFactory(project=project), stored_image_asset(project))

    video = api.get(f"/api/renders/{render.pk}/video/")
    download = api.get(f"/api/renders/{render.pk}/video/?download=1")
    thumb = api.get(f"/api/renders/{render.pk}/thumbnail/")

    assert video["Content-Disposition"].startswith("inline")
    assert download["Content-Disposition"].startswith("attachment")
    assert thumb["Content-Type"] == "image/jpeg"
    for response in (video, download, thumb):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].endswith("sandbox")
        assert response["Cache-Control"].startswith("private")


# --- authentication and schema --------------------------------------------------------


def test_a_token_from_the_token_endpoint_authenticates_api_calls(alice, project):
    anonymous = APIClient()
    token = anonymous.post(
        "/api/token/", {"username": "alice", "password": PASSWORD}, format="json"
    ).json()["token"]
    assert token == Token.objects.get(user=alice).key

    with_token = APIClient()
    with_token.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = with_token.get("/api/projects/")

    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [project.pk]


def test_the_api_refuses_anonymous_callers_and_wrong_tokens(alice):
    anonymous = APIClient()
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    # Session authentication comes first, so DRF answers 403 rather than 401.
    assert anonymous.get("/api/projects/").status_code == 403
    assert wrong.get("/api/projects/").status_code == 403
    assert (
        anonymous.post(
            "/api/token/", {"username": "alice", "password": "nope"}
        ).status_code
        == 400
    )


def test_repeated_token_requests_are_throttled(alice, monkeypatch):
    # DRF reads the rates into the class once, at import; settings come too late.
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        {**ScopedRateThrottle.THROTTLE_RATES, "token": "2/min"},
    )
    anonymous = APIClient()

    guesses = [
        anonymous.post("/api/token/", {"username": "alice", "password": f"guess{n}"})
        for n in range(2)
    ]
    right = anonymous.post("/api/token/", {"username": "alice", "password": PASSWORD})

    assert [g.status_code for g in guesses] == [400, 400]
    assert right.status_code == 429
    assert "Retry-After" in right
    assert not Token.objects.exists()


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_docs_are_refused_to_anonymous_callers(path):
    # Session authentication comes first, so DRF answers 403 rather than 401.
    assert APIClient().get(path).status_code == 403


def test_the_schema_is_a_valid_openapi_document(api):
    response = api.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/projects/{id}/assets/",
        "/api/projects/{id}/render/",
        "/api/assets/{id}/",
        "/api/jobs/{id}/",
        "/api/renders/{id}/",
        "/api/token/",
    ):
        assert path in schema["paths"]


def test_the_api_docs_page_serves_swagger_ui_from_this_server(api):
    response = api.get("/api/docs/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
