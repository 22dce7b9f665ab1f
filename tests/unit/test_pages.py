"""The server-rendered pages: projects, uploads, the render button, job pages
and the downloads, with and without htmx."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from media_jobs.models import Job
from projects.analysis import AUDIO_ENGINE_VERSION
from projects.models import Asset, AudioAnalysis, Project, Render
from projects.uploads import add_asset_from_path
from tests.factories import JobFactory
from tests.unit.web_helpers import (
    HTML_POLYGLOT,
    files_under,
    finished_render,
    media_files,
    multipart_body,
    png_bytes,
    stored_document_asset,
    stored_image_asset,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


# --- projects -------------------------------------------------------------------------


def test_creating_a_project_on_the_list_page_makes_it_yours(alice_client, alice):
    response = alice_client.post(
        reverse("projects:create"),
        {
            "title": "Night drive",
            "style": "dreamy",
            "target_duration": "12.5",
            "preset": "shorts",
            "output_format": "webm",
        },
    )

    project = Project.objects.get(title="Night drive")
    assert response.status_code == 302
    assert response["Location"] == reverse("projects:detail", args=[project.pk])
    assert project.owner == alice
    assert (
        project.style,
        project.target_duration,
        project.preset,
        project.output_format,
    ) == (
        "dreamy",
        12.5,
        "shorts",
        "webm",
    )


def test_an_invalid_new_project_is_shown_again_with_the_reason(alice_client):
    response = alice_client.post(
        reverse("projects:create"),
        {
            "title": "Too short",
            "style": "dreamy",
            "target_duration": "1",
            "preset": "youtube",
            "output_format": "mp4",
        },
    )

    assert response.status_code == 400
    assert "greater than or equal to 2" in response.content.decode()
    assert not Project.objects.filter(title="Too short").exists()


def test_the_project_list_shows_your_projects_and_the_create_form(
    alice_client, project
):
    html = alice_client.get(reverse("projects:list")).content.decode()

    assert "Summer song" in html
    assert reverse("projects:detail", args=[project.pk]) in html
    assert f'action="{reverse("projects:create")}"' in html


def test_saving_the_settings_changes_the_project(alice_client, project):
    response = alice_client.post(
        reverse("projects:update", args=[project.pk]),
        {
            "title": "Winter song",
            "style": "energetic",
            "target_duration": "20",
            "preset": "square",
            "output_format": "gif",
        },
    )

    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.title, project.style, project.preset, project.output_format) == (
        "Winter song",
        "energetic",
        "square",
        "gif",
    )
    assert project.target_duration == 20.0


def test_saving_the_settings_with_htmx_returns_only_the_settings_partial(
    alice_client, project
):
    response = alice_client.post(
        reverse("projects:update", args=[project.pk]),
        {
            "title": "Winter song",
            "style": "energetic",
            "target_duration": "20",
            "preset": "square",
            "output_format": "gif",
        },
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="card" id="project-settings">')
    assert "<html" not in html
    assert "Saved." in html


def test_invalid_settings_are_refused_with_the_reason(alice_client, project):
    response = alice_client.post(
        reverse("projects:update", args=[project.pk]),
        {
            "title": "",
            "style": "cinematic",
            "target_duration": "30",
            "preset": "nope",
            "output_format": "mp4",
        },
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert "This field is required." in html
    assert "Select a valid choice." in html
    project.refresh_from_db()
    assert project.title == "Summer song"


def test_deleting_a_project_removes_it_and_its_files(alice_client, project):
    stored_image_asset(project)
    job = JobFactory(project=project)
    finished_render(job, project.assets.get())
    assert len(media_files()) == 3

    confirm = alice_client.get(reverse("projects:delete", args=[project.pk]))
    response = alice_client.post(reverse("projects:delete", args=[project.pk]))

    assert confirm.status_code == 200
    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Job.objects.filter(pk=job.pk).exists()
    assert media_files() == []


def test_a_project_with_a_job_under_way_is_not_deleted(alice_client, project):
    stored_image_asset(project)
    job = JobFactory(project=project, status=Job.Status.RUNNING)

    confirm = alice_client.get(reverse("projects:delete", args=[project.pk]))
    response = alice_client.post(
        reverse("projects:delete", args=[project.pk]), follow=True
    )

    assert f"Job #{job.pk}</a> of this project is running" in confirm.content.decode()
    assert response.redirect_chain == [
        (reverse("projects:detail", args=[project.pk]), 302)
    ]
    assert "delete the project once it has finished" in response.content.decode()
    assert Project.objects.filter(pk=project.pk).exists()
    assert len(media_files()) == 1


# --- uploads --------------------------------------------------------------------------


def test_uploading_a_photo_and_a_song_adds_both(alice_client, project, sample_files):
    song = Path(sample_files["song"])
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {
            "files": [
                SimpleUploadedFile(
                    "portrait.png", png_bytes(), content_type="image/png"
                ),
                SimpleUploadedFile(
                    "song.wav", song.read_bytes(), content_type="audio/wav"
                ),
            ]
        },
        follow=True,
    )

    html = response.content.decode()
    image = project.assets.get(kind=Asset.Kind.IMAGE)
    audio = project.assets.get(kind=Asset.Kind.AUDIO)
    assert (image.original_name, image.mime, image.width) == (
        "portrait.png",
        "image/png",
        64,
    )
    assert audio.original_name == "song.wav"
    assert audio.duration == pytest.approx(12.0, abs=0.1)
    for asset in (image, audio):
        stored = Path(asset.file.path)
        assert stored.is_file()
        assert stored.is_relative_to(Path(django_settings.MEDIA_ROOT))
    assert f'<img src="{reverse("projects:asset_file", args=[image.pk])}"' in html
    assert "portrait.png added" in html and "song.wav added" in html


def test_the_project_page_shows_the_tempo_of_an_analysed_song(
    alice_client, project, sample_files
):
    song = add_asset_from_path(project, sample_files["song"])
    AudioAnalysis.objects.create(
        sha256=song.sha256,
        engine_version=AUDIO_ENGINE_VERSION,
        duration=12.0,
        bpm=120.0,
        bpm_confidence=0.9,
        loudness_lufs=-14.2,
    )

    html = alice_client.get(
        reverse("projects:detail", args=[project.pk])
    ).content.decode()

    assert "120.0 BPM" in html
    assert "-14.2 LUFS" in html
    assert "12.0 s" in html


def test_an_htmx_upload_returns_only_the_assets_partial(alice_client, project):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {
            "files": [
                SimpleUploadedFile(
                    "portrait.png", png_bytes(), content_type="image/png"
                )
            ]
        },
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="card" id="assets">')
    assert "<html" not in html
    assert "portrait.png" in html
    assert project.assets.count() == 1


def test_an_html_file_named_png_is_refused_with_a_clear_message(alice_client, project):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {
            "files": [
                SimpleUploadedFile("cat.png", HTML_POLYGLOT, content_type="image/png")
            ]
        },
        follow=True,
    )

    html = response.content.decode()
    assert "cat.png" in html
    assert "looks like a web page (HTML)" in html
    assert project.assets.count() == 0
    assert media_files() == []


def test_an_htmx_upload_of_only_rejected_files_is_a_400_with_the_message(
    alice_client, project
):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {
            "files": [
                SimpleUploadedFile("cat.png", HTML_POLYGLOT, content_type="image/png")
            ]
        },
        headers=HTMX,
    )

    assert response.status_code == 400
    assert "looks like a web page (HTML)" in response.content.decode()
    assert media_files() == []


def test_a_rejected_file_does_not_stop_the_good_ones_beside_it(alice_client, project):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]),
        {
            "files": [
                SimpleUploadedFile("cat.png", HTML_POLYGLOT, content_type="image/png"),
                SimpleUploadedFile("good.png", png_bytes(), content_type="image/png"),
            ]
        },
        headers=HTMX,
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert [a.original_name for a in project.assets.all()] == ["good.png"]
    assert "looks like a web page (HTML)" in html
    assert "good.png added" in html
    assert len(media_files()) == 1


def test_an_upload_without_files_asks_for_one(alice_client, project):
    response = alice_client.post(
        reverse("projects:upload", args=[project.pk]), {}, headers=HTMX
    )

    assert response.status_code == 400
    assert "Choose at least one file to upload." in response.content.decode()


def test_a_file_name_with_a_path_is_stored_under_a_server_made_name(
    alice_client, project, tmp_path
):
    body, content_type = multipart_body(
        "files", "../../evil.png", png_bytes(), "image/png"
    )

    response = alice_client.generic(
        "POST",
        reverse("projects:upload", args=[project.pk]),
        body,
        content_type=content_type,
    )

    assert response.status_code == 302
    asset = project.assets.get()
    media_root = Path(django_settings.MEDIA_ROOT).resolve()
    stored = Path(asset.file.path).resolve()
    assert stored.is_relative_to(media_root)
    assert stored.parent == media_root / "assets" / str(project.owner_id)
    assert "evil" not in asset.file.name and ".." not in asset.file.name
    assert "/" not in asset.original_name
    # Nothing was written beside or above the media folder.
    assert [p for p in files_under(tmp_path) if "evil" in p.name] == []
    assert not (media_root.parent / "evil.png").exists()
    assert not (media_root.parent.parent / "evil.png").exists()


def test_removing_an_asset_deletes_its_file(alice_client, project):
    asset = stored_image_asset(project)
    stored = Path(asset.file.path)

    response = alice_client.post(reverse("projects:asset_delete", args=[asset.pk]))

    assert response.status_code == 302
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert not stored.exists()


def test_the_song_of_a_render_under_way_cannot_be_removed(alice_client, ready_project):
    alice_client.post(reverse("projects:render", args=[ready_project.pk]))
    song = ready_project.music()

    response = alice_client.post(
        reverse("projects:asset_delete", args=[song.pk]), headers=HTMX
    )

    assert response.status_code == 409
    assert "is the song of render" in response.content.decode()
    assert Path(song.file.path).exists()


def test_an_image_is_served_inline_with_its_stored_type_and_nosniff(
    alice_client, project
):
    asset = stored_image_asset(project)

    response = alice_client.get(reverse("projects:asset_file", args=[asset.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].endswith("sandbox")
    assert response["Cache-Control"].startswith("private")
    assert response["Content-Disposition"].startswith("inline")
    assert b"".join(response.streaming_content) == png_bytes((10, 120, 200))


def test_a_document_is_only_ever_downloaded(alice_client, project):
    asset = stored_document_asset(project)

    response = alice_client.get(reverse("projects:asset_file", args=[asset.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown"
    assert response["Content-Disposition"] == 'attachment; filename="script.md"'
    assert response["X-Content-Type-Options"] == "nosniff"


# --- rendering ------------------------------------------------------------------------


def test_rendering_without_material_says_what_is_missing(alice_client, project):
    response = alice_client.post(
        reverse("projects:render", args=[project.pk]), follow=True
    )

    assert response.redirect_chain == [
        (reverse("projects:detail", args=[project.pk]), 302)
    ]
    assert (
        "Upload at least one photo and a song before rendering."
        in response.content.decode()
    )
    assert not Job.objects.exists()


def test_rendering_without_material_with_htmx_is_a_400_partial(alice_client, project):
    response = alice_client.post(
        reverse("projects:render", args=[project.pk]), headers=HTMX
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert html.lstrip().startswith('<section class="card" id="render-panel">')
    assert "Upload at least one photo and a song before rendering." in html


def test_the_render_button_creates_a_queued_job_and_opens_its_page(
    alice_client, ready_project
):
    # on_commit callbacks do not run inside the test's transaction, so the
    # job is created but its canvas is never sent: the pipeline is not tested here.
    response = alice_client.post(reverse("projects:render", args=[ready_project.pk]))

    job = Job.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs:detail", args=[job.pk])
    assert (job.owner, job.project, job.kind, job.status) == (
        ready_project.owner,
        ready_project,
        Job.Kind.RENDER,
        Job.Status.QUEUED,
    )
    assert job.params["preset"] == ready_project.preset


def test_the_render_button_with_htmx_redirects_the_browser_to_the_job(
    alice_client, ready_project
):
    response = alice_client.post(
        reverse("projects:render", args=[ready_project.pk]), headers=HTMX
    )

    job = Job.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("jobs:detail", args=[job.pk])


def test_a_second_click_on_render_does_not_start_a_second_render(
    alice_client, ready_project
):
    first = alice_client.post(reverse("projects:render", args=[ready_project.pk]))
    second = alice_client.post(reverse("projects:render", args=[ready_project.pk]))

    assert Job.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_a_second_click_on_render_with_htmx_opens_the_render_under_way(
    alice_client, ready_project
):
    alice_client.post(reverse("projects:render", args=[ready_project.pk]))
    second = alice_client.post(
        reverse("projects:render", args=[ready_project.pk]), headers=HTMX
    )

    job = Job.objects.get()
    assert second["HX-Redirect"] == reverse("jobs:detail", args=[job.pk])


# --- job pages ------------------------------------------------------------------------


def test_an_active_job_page_polls_and_listens_on_the_websocket(alice_client, project):
    job = JobFactory(
        project=project,
        status=Job.Status.RUNNING,
        stage="scenes",
        progress=0.5,
        message="2 of 4 scenes rendered",
    )

    html = alice_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()

    assert f'id="job-progress-{job.pk}"' in html
    assert 'data-status="running"' in html and 'data-progress="0.5"' in html
    assert f'hx-get="{reverse("jobs:progress", args=[job.pk])}"' in html
    assert 'hx-trigger="every 2s"' in html and 'hx-swap="outerHTML"' in html
    assert f'hx-ext="ws" ws-connect="/ws/jobs/{job.pk}/"' in html
    assert "2 of 4 scenes rendered" in html
    assert 'value="50"' in html


def test_a_finished_job_page_stops_polling_and_shows_scenes_and_video(
    alice_client, project
):
    image = stored_image_asset(project, name="face.png")
    job = JobFactory(project=project)
    render = finished_render(job, image)

    html = alice_client.get(reverse("jobs:detail", args=[job.pk])).content.decode()

    assert 'data-status="succeeded"' in html
    assert "hx-trigger" not in html
    assert "ws-connect" not in html
    assert "face.png" in html and "0.000 – 2.000" in html
    assert "<video controls" in html
    assert reverse("projects:render_file", args=[render.pk]) in html


def test_the_progress_endpoint_gives_htmx_the_partial_and_browsers_the_page(
    alice_client, project
):
    job = JobFactory(
        project=project,
        status=Job.Status.FAILED,
        stage="failed",
        error="the song is silent",
    )
    url = reverse("jobs:progress", args=[job.pk])

    partial = alice_client.get(url, headers=HTMX).content.decode()
    page = alice_client.get(url).content.decode()

    assert partial.lstrip().startswith(f'<section id="job-progress-{job.pk}"')
    assert "<html" not in partial
    assert "every 2s" not in partial  # polling stops
    assert "the song is silent" in partial
    assert "<html" in page and f'id="job-progress-{job.pk}"' in page


def test_the_project_page_lists_jobs_and_plays_finished_renders(alice_client, project):
    image = stored_image_asset(project)
    job = JobFactory(project=project)
    render = finished_render(job, image)

    html = alice_client.get(
        reverse("projects:detail", args=[project.pk])
    ).content.decode()

    assert reverse("jobs:detail", args=[job.pk]) in html
    assert "<video controls" in html
    assert f'poster="{reverse("projects:render_thumbnail", args=[render.pk])}"' in html
    assert f"{reverse('projects:render_file', args=[render.pk])}?download=1" in html
    assert reverse("projects:render_manifest", args=[render.pk]) in html


def test_the_render_downloads_serve_the_stored_files(alice_client, project):
    job = JobFactory(project=project)
    render = finished_render(job, stored_image_asset(project))

    video = alice_client.get(reverse("projects:render_file", args=[render.pk]))
    download = alice_client.get(
        reverse("projects:render_file", args=[render.pk]) + "?download=1"
    )
    thumb = alice_client.get(reverse("projects:render_thumbnail", args=[render.pk]))
    manifest = alice_client.get(reverse("projects:render_manifest", args=[render.pk]))

    assert video["Content-Type"] == "video/mp4"
    assert b"".join(video.streaming_content).startswith(b"\x00\x00\x00\x18ftyp")
    assert download["Content-Disposition"].startswith("attachment")
    assert video["Content-Disposition"].startswith("inline")
    assert thumb["Content-Type"] == "image/jpeg"
    for response in (video, download, thumb):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].endswith("sandbox")
        assert response["Cache-Control"].startswith("private")
    assert manifest.json() == {"manifest_version": 1, "job": job.pk, "cuts": []}


def test_a_render_whose_file_is_gone_is_a_404(alice_client, project):
    job = JobFactory(project=project)
    render = finished_render(job, stored_image_asset(project))
    Render.objects.filter(pk=render.pk).update(file="renders/missing.mp4")

    assert (
        alice_client.get(reverse("projects:render_file", args=[render.pk])).status_code
        == 404
    )
