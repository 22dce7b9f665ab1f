"""Quick mode, the storyboard page and the scene editor, as their users see
them: alice owns the project, charlie never has access."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from media_jobs.models import Job
from projects.models import Asset, Project, Shot, StylePreset
from projects.storyboard_forms import QuickForm
from tests.unit.web_helpers import HTML_POLYGLOT, media_files

pytestmark = pytest.mark.django_db


def _upload(path: Path, content_type: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, Path(path).read_bytes(), content_type)


def _shots(project: Project) -> list[Shot]:
    return list(Shot.objects.filter(storyboard__project=project).order_by("index"))


def _edit_data(shot: Shot, client, project: Project, **changes) -> dict:
    """The form as the page shows it, with ``changes`` typed in."""
    response = client.get(reverse("projects:shot_edit", args=[project.pk, shot.index]))
    form = response.context["form"]
    data = {}
    for field in form:
        value = field.value()
        if value is None or value is False:
            continue
        data[field.html_name] = "on" if value is True else value
    data.update(changes)
    return data


# --- Quick mode ------------------------------------------------------------------


def test_the_quick_page_offers_each_style_preset_with_its_description(alice_client):
    StylePreset.objects.filter(key="dreamy").update(
        name="Daydream", description="Soft light, slow drifting camera."
    )

    response = alice_client.get(reverse("projects:quick"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Daydream" in html and "Soft light, slow drifting camera." in html
    for name in StylePreset.objects.filter(enabled=True).values_list("name", flat=True):
        assert name in html


def test_quick_mode_asks_for_nothing_but_the_material_a_style_and_a_length():
    assert list(QuickForm().fields) == [
        "title",
        "photos",
        "song",
        "script",
        "style",
        "duration",
    ]


def test_quick_mode_starts_a_render_and_shows_its_storyboard(
    alice_client, alice, sample_files
):
    response = alice_client.post(
        reverse("projects:quick"),
        {
            "title": "Beach day",
            "photos": [
                _upload(sample_files["astronaut"], "image/png"),
                _upload(sample_files["hopper"], "image/jpeg"),
            ],
            "song": _upload(sample_files["song"], "audio/wav"),
            "style": "dreamy",
            "duration": "8",
        },
    )

    project = Project.objects.get(owner=alice)
    assert response.status_code == 303
    assert response["Location"] == reverse("projects:storyboard", args=[project.pk])
    assert (project.title, project.mode, project.style, project.target_duration) == (
        "Beach day",
        Project.Mode.QUICK,
        "dreamy",
        8.0,
    )
    assert project.auto_character
    assert project.images().count() == 2 and project.music() is not None
    assert project.jobs.filter(kind=Job.Kind.RENDER).count() == 1
    page = alice_client.get(response["Location"])
    assert page.status_code == 200
    assert "A render is under way" in page.content.decode()


def test_a_rejected_quick_upload_keeps_no_project_file_or_job(
    alice_client, sample_files
):
    response = alice_client.post(
        reverse("projects:quick"),
        {
            "photos": [
                _upload(sample_files["astronaut"], "image/png"),
                SimpleUploadedFile("cat.png", HTML_POLYGLOT, "image/png"),
            ],
            "song": _upload(sample_files["song"], "audio/wav"),
            "style": "dreamy",
            "duration": "8",
        },
    )

    assert response.status_code == 400
    assert "cat.png" in response.context["error"]
    assert escape(response.context["error"]) in response.content.decode()
    assert not Project.objects.exists()
    assert not Asset.objects.exists()
    assert not Job.objects.exists()
    assert media_files() == []


def test_a_photo_given_as_the_song_is_refused(alice_client, sample_files):
    response = alice_client.post(
        reverse("projects:quick"),
        {
            "photos": [_upload(sample_files["astronaut"], "image/png")],
            "song": _upload(sample_files["hopper"], "image/jpeg"),
            "style": "dreamy",
            "duration": "8",
        },
    )

    assert response.status_code == 400
    assert "not a song" in response.context["error"]
    assert not Project.objects.exists()
    assert media_files() == []


def test_quick_mode_without_photos_shows_the_form_error(alice_client, sample_files):
    response = alice_client.post(
        reverse("projects:quick"),
        {
            "song": _upload(sample_files["song"], "audio/wav"),
            "style": "dreamy",
            "duration": "8",
        },
    )

    assert response.status_code == 400
    assert "Choose at least one photo." in response.content.decode()


def test_the_project_list_links_to_quick_mode(alice_client):
    html = alice_client.get(reverse("projects:list")).content.decode()

    assert reverse("projects:quick") in html


# --- the storyboard page ---------------------------------------------------------


def test_the_storyboard_page_sends_an_anonymous_visitor_to_log_in(client, project):
    url = reverse("projects:storyboard", args=[project.pk])

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_someone_elses_storyboard_is_not_found(charlie_client, project):
    assert (
        charlie_client.get(
            reverse("projects:storyboard", args=[project.pk])
        ).status_code
        == 404
    )
    assert (
        charlie_client.get(
            reverse("projects:shot_edit", args=[project.pk, 0])
        ).status_code
        == 404
    )


def test_without_a_storyboard_the_page_offers_to_plan_one(alice_client, project):
    response = alice_client.get(reverse("projects:storyboard", args=[project.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "No storyboard yet" in html
    assert reverse("projects:storyboard_plan", args=[project.pk]) in html


def test_the_owner_sees_every_scene_with_its_prompt(alice_client, planned):
    response = alice_client.get(reverse("projects:storyboard", args=[planned.pk]))

    html = response.content.decode()
    shots = _shots(planned)
    assert response.status_code == 200
    assert len(shots) >= 2
    for shot in shots:
        assert shot.prompt
        assert f'id="shot-{shot.index}"' in html
        assert reverse("projects:shot_edit", args=[planned.pk, shot.index]) in html
    board = planned.storyboard
    assert f"{board.width}×{board.height}" in html
    assert reverse("projects:render", args=[planned.pk]) in html


def test_the_project_page_links_to_its_storyboard(alice_client, project):
    html = alice_client.get(
        reverse("projects:detail", args=[project.pk])
    ).content.decode()

    assert reverse("projects:storyboard", args=[project.pk]) in html


def test_planning_starts_a_storyboard_job_and_the_page_follows_it(
    alice_client, ready_project
):
    url = reverse("projects:storyboard_plan", args=[ready_project.pk])

    response = alice_client.post(
        url, {"style": "neon_noir", "duration": "6", "fps": "25", "seed": "42"}
    )

    job = ready_project.jobs.get(kind=Job.Kind.STORYBOARD)
    assert response.status_code == 303
    assert response["Location"] == reverse(
        "projects:storyboard", args=[ready_project.pk]
    )
    assert (job.params["style"], job.params["fps"], job.params["seed"]) == (
        "neon_noir",
        25,
        42,
    )
    page = alice_client.get(response["Location"])
    assert page.context["planning"]
    assert 'hx-trigger="every 2s"' in page.content.decode()


def test_planning_without_a_song_says_what_is_missing(alice_client, project):
    response = alice_client.post(
        reverse("projects:storyboard_plan", args=[project.pk]), {}
    )

    assert response.status_code == 400
    assert "Upload at least one photo and a song" in response.content.decode()
    assert not project.jobs.exists()


# --- editing a scene -------------------------------------------------------------


def test_editing_a_scene_changes_it_alone_and_turns_the_project_advanced(
    alice_client, planned
):
    first, *others = _shots(planned)
    move = "pan_left" if first.move != "pan_left" else "pan_right"
    data = _edit_data(
        first, alice_client, planned, move=move, stage_concept="a lighthouse at dusk"
    )

    response = alice_client.post(
        reverse("projects:shot_edit", args=[planned.pk, first.index]), data
    )

    assert response.status_code == 303
    assert response["Location"] == reverse("projects:storyboard", args=[planned.pk])
    first.refresh_from_db()
    planned.refresh_from_db()
    assert first.move == move
    assert first.user_stages == {"concept": "a lighthouse at dusk"}
    assert first.stage_sources["concept"] == "user"
    assert "a lighthouse at dusk" in first.prompt
    assert first.edited
    assert not any(s.edited for s in _shots(planned)[1:])
    assert planned.mode == Project.Mode.ADVANCED
    assert planned.storyboard.version == 2


def test_the_edit_page_shows_the_prompt_and_negative_prompt(alice_client, planned):
    shot = _shots(planned)[0]

    response = alice_client.get(
        reverse("projects:shot_edit", args=[planned.pk, shot.index])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert escape(shot.prompt) in html
    assert escape(shot.negative_prompt) in html


def test_an_unchanged_form_marks_nothing_edited(alice_client, planned):
    shot = _shots(planned)[0]
    data = _edit_data(shot, alice_client, planned)

    response = alice_client.post(
        reverse("projects:shot_edit", args=[planned.pk, shot.index]), data
    )

    assert response.status_code == 303
    assert not any(s.edited for s in _shots(planned))
    planned.refresh_from_db()
    assert planned.storyboard.version == 1


def test_the_last_scene_cannot_change_its_length(alice_client, planned):
    last = _shots(planned)[-1]
    data = _edit_data(last, alice_client, planned, beats=str(last.beats + 2))

    response = alice_client.post(
        reverse("projects:shot_edit", args=[planned.pk, last.index]), data
    )

    assert response.status_code == 400
    assert "the last scene ends with the video" in response.content.decode()
    last.refresh_from_db()
    assert not last.edited


def test_an_end_keyframe_needs_a_video_model(alice_client, planned):
    shot = _shots(planned)[0]
    other = planned.images().exclude(pk=shot.image_id).first()
    data = _edit_data(shot, alice_client, planned, end_image=str(other.pk))

    response = alice_client.post(
        reverse("projects:shot_edit", args=[planned.pk, shot.index]), data
    )

    assert response.status_code == 400
    assert "makes no video between two keyframes" in response.content.decode()
    shot.refresh_from_db()
    assert shot.end_image is None and not shot.edited
