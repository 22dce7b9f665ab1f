"""The storyboard API: read the storyboard, plan it (a job), read and edit a
scene. alice owns the project; charlie never has access."""

from __future__ import annotations

import pytest
import yaml
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from media_jobs.models import Job
from projects.models import Project, Shot

pytestmark = pytest.mark.django_db


def _client(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _url(project: Project, tail: str = "") -> str:
    return f"/api/projects/{project.pk}/storyboard/{tail}"


def test_the_owner_reads_the_storyboard_with_every_scene(alice, planned):
    response = _client(alice).get(_url(planned))

    body = response.json()
    shots = list(Shot.objects.filter(storyboard__project=planned).order_by("index"))
    assert response.status_code == 200
    assert body["project"] == planned.pk
    assert [s["index"] for s in body["shots"]] == [s.index for s in shots]
    assert [s["prompt"] for s in body["shots"]] == [s.prompt for s in shots]
    assert body["shots"][0]["start"] == 0.0


def test_another_users_storyboard_and_scenes_are_not_found(charlie, planned):
    api = _client(charlie)

    assert api.get(_url(planned)).status_code == 404
    assert api.get(_url(planned, "shots/0/")).status_code == 404
    assert api.patch(_url(planned, "shots/0/"), {"seed": 3}).status_code == 404
    assert api.post(_url(planned, "plan/"), {}).status_code == 404
    assert not planned.jobs.filter(kind=Job.Kind.STORYBOARD).count() > 1


def test_a_project_without_a_storyboard_has_none_to_read(alice, project):
    response = _client(alice).get(_url(project))

    assert response.status_code == 404
    assert "no storyboard" in response.json()["detail"]


def test_anonymous_callers_are_refused(planned):
    assert APIClient().get(_url(planned)).status_code in (401, 403)


def test_planning_returns_the_storyboard_job(alice, ready_project):
    response = _client(alice).post(
        _url(ready_project, "plan/"),
        {"style": "dreamy", "duration": 6, "fps": 24, "seed": 9},
        format="json",
    )

    job = ready_project.jobs.get(kind=Job.Kind.STORYBOARD)
    assert response.status_code == 202
    assert response.json()["id"] == job.pk
    assert response.json()["kind"] == "storyboard"
    assert (job.params["style"], job.params["fps"], job.params["seed"]) == (
        "dreamy",
        24,
        9,
    )


def test_planning_an_unready_project_says_why(alice, project):
    response = _client(alice).post(_url(project, "plan/"), {}, format="json")

    assert response.status_code == 400
    assert "song" in response.json()["detail"]
    assert not project.jobs.exists()


def test_planning_with_an_unknown_style_is_refused(alice, ready_project):
    response = _client(alice).post(
        _url(ready_project, "plan/"), {"style": "sepia-ish"}, format="json"
    )

    assert response.status_code == 400
    assert "style" in response.json()
    assert not ready_project.jobs.filter(kind=Job.Kind.STORYBOARD).exists()


def test_patching_a_scene_edits_it_and_returns_the_changed_scenes(alice, planned):
    api = _client(alice)
    before = api.get(_url(planned, "shots/0/")).json()
    move = "pan_left" if before["move"] != "pan_left" else "pan_right"

    response = api.patch(
        _url(planned, "shots/0/"),
        {"move": move, "user_stages": {"concept": "a red kite over dunes"}},
        format="json",
    )

    assert response.status_code == 200
    changed = response.json()
    assert [s["index"] for s in changed] == [0]
    assert changed[0]["move"] == move and changed[0]["edited"]
    assert "a red kite over dunes" in changed[0]["prompt"]
    planned.refresh_from_db()
    assert planned.mode == Project.Mode.ADVANCED
    others = Shot.objects.filter(storyboard__project=planned).exclude(index=0)
    assert not others.filter(edited=True).exists()


def test_a_refused_edit_is_a_400_saying_why(alice, planned):
    last = Shot.objects.filter(storyboard__project=planned).order_by("index").last()

    response = _client(alice).patch(
        _url(planned, f"shots/{last.index}/"), {"beats": 3}, format="json"
    )

    assert response.status_code == 400
    assert "the last scene ends with the video" in response.json()["detail"]
    last.refresh_from_db()
    assert not last.edited


def test_an_unknown_move_is_refused(alice, planned):
    response = _client(alice).patch(
        _url(planned, "shots/0/"), {"move": "barrel_roll"}, format="json"
    )

    assert response.status_code == 400
    assert "unknown camera move" in response.json()["detail"]


def test_a_scene_the_storyboard_lacks_is_not_found(alice, planned):
    assert _client(alice).get(_url(planned, "shots/999/")).status_code == 404


def test_the_schema_documents_the_storyboard_endpoints(alice):
    response = _client(alice).get("/api/schema/")

    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    for path in (
        "/api/projects/{id}/storyboard/",
        "/api/projects/{id}/storyboard/plan/",
        "/api/projects/{id}/storyboard/shots/{index}/",
    ):
        assert path in schema["paths"]
