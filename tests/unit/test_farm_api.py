"""The farm's API: job stages and tasks, cancel / retry / re-render a scene,
batches of renders (JSON and CSV), priorities and models on a render, and
owner isolation of all of them."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from media_jobs import records
from media_jobs.models import Batch, Job, JobStage, TaskRun
from projects.batches import (
    MAX_CSV_BYTES,
    BatchError,
    RenderRequest,
    parse_batch_csv,
    parse_batch_json,
    submit_batch,
)
from projects.models import Scene
from projects.pipeline import render_now, start_render
from projects.styles import style_choices
from projects.uploads import add_asset_from_path
from tests.factories import JobFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def charlie_api(charlie) -> APIClient:
    client = APIClient()
    client.force_authenticate(charlie)
    return client


@pytest.fixture
def rendered(small_project, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # 6 s: 4 s of this song is one scene, and re-rendering one scene of
    # several is the interesting case.
    job = render_now(small_project, duration=6.0)
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


# --- job details ----------------------------------------------------------------------


def test_a_finished_render_shows_its_stages_and_tasks(api, rendered):
    body = api.get(f"/api/jobs/{rendered.pk}/").json()

    assert [s["name"] for s in body["stages"]] == [
        "analyze",
        "character",
        "plan",
        "scenes",
        "assemble",
    ]
    assert {s["status"] for s in body["stages"]} == {"done"}
    assert all(s["seconds"] is not None for s in body["stages"])
    scenes = Scene.objects.filter(job=rendered).count()
    keys = {t["key"] for t in body["tasks"]}
    assert {f"scene-{i}" for i in range(scenes)} <= keys
    assert {"analyze", "character", "plan"} <= keys
    for task in body["tasks"]:
        assert task["status"] == "done"
        assert task["deliveries"] >= 1
        assert set(task) == {
            "key",
            "stage",
            "scene_index",
            "status",
            "queue",
            "worker",
            "deliveries",
            "cached",
            "progress",
            "seconds",
            "queued_at",
            "started_at",
            "finished_at",
            "error",
        }
    assert (body["priority"], body["attempts"], body["batch"], body["parent"]) == (
        "normal",
        1,
        None,
        None,
    )
    assert body["dispatched_at"] is None  # run inline, not through the scheduler


def _job_with_records(project) -> Job:
    job = JobFactory(project=project)
    records.create_stages(job)
    for i in range(3):
        TaskRun.objects.create(
            job=job, stage="scenes", key=f"scene-{i}", scene_index=i, task_name="t"
        )
    return job


def test_the_job_list_takes_the_same_queries_for_more_jobs(api, alice):
    project = ProjectFactory(owner=alice)
    _job_with_records(project)
    with CaptureQueriesContext(connection) as few:
        assert api.get("/api/jobs/").status_code == 200
    for _ in range(4):
        _job_with_records(project)
    with CaptureQueriesContext(connection) as many:
        listed = api.get("/api/jobs/").json()

    assert listed["count"] == 5
    assert all(len(job["stages"]) == 5 for job in listed["results"])
    assert all(len(job["tasks"]) == 3 for job in listed["results"])
    assert len(many) == len(few)


# --- cancel and retry -----------------------------------------------------------------


def test_cancelling_a_queued_job_is_a_202_and_a_second_cancel_a_409(
    api, small_project, farm_full
):
    job = start_render(small_project)

    first = api.post(f"/api/jobs/{job.pk}/cancel/")
    second = api.post(f"/api/jobs/{job.pk}/cancel/")

    assert first.status_code == 202, first.content
    assert first.json()["status"] == "cancelled"
    assert {s["status"] for s in first.json()["stages"]} == {"cancelled"}
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert second.status_code == 409
    assert second.json() == {"detail": f"job #{job.pk} is already cancelled"}


def test_retrying_a_failed_job_queues_it_again(api, alice, farm_full):
    job = JobFactory(
        project=ProjectFactory(owner=alice), status=Job.Status.FAILED, error="boom"
    )
    records.create_stages(job)

    response = api.post(f"/api/jobs/{job.pk}/retry/")

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["attempts"], body["error"]) == ("queued", 2, "")
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED


def test_retrying_a_queued_job_is_a_409(api, alice):
    job = JobFactory(project=ProjectFactory(owner=alice))

    response = api.post(f"/api/jobs/{job.pk}/retry/")

    assert response.status_code == 409
    assert "only a failed or cancelled job can be retried" in response.json()["detail"]


# --- re-rendering one scene -----------------------------------------------------------


def test_rerendering_a_scene_changes_only_its_seed(api, rendered, farm_full):
    old = {s.index: s.seed for s in Scene.objects.filter(job=rendered)}
    assert len(old) >= 2
    seed = (old[1] + 1) % 2**31

    response = api.post(
        f"/api/jobs/{rendered.pk}/scenes/1/rerender/", {"seed": seed}, format="json"
    )

    assert response.status_code == 202, response.content
    child = Job.objects.get(pk=response.json()["id"])
    assert child.parent == rendered and response.json()["parent"] == rendered.pk
    assert child.status == Job.Status.QUEUED
    new = {s.index: s.seed for s in Scene.objects.filter(job=child)}
    assert new == {**old, 1: seed}


def test_rerendering_without_a_body_draws_a_new_seed(api, rendered, farm_full):
    response = api.post(f"/api/jobs/{rendered.pk}/scenes/0/rerender/")

    assert response.status_code == 202, response.content
    child = Job.objects.get(pk=response.json()["id"])
    assert Scene.objects.filter(job=child).count() == (
        Scene.objects.filter(job=rendered).count()
    )


def test_rerendering_a_missing_scene_is_a_404(api, rendered):
    response = api.post(f"/api/jobs/{rendered.pk}/scenes/99/rerender/")

    assert response.status_code == 404
    assert Job.objects.count() == 1


def test_rerendering_a_scene_of_an_unfinished_job_is_a_400(
    api, small_project, farm_full
):
    job = start_render(small_project)

    response = api.post(f"/api/jobs/{job.pk}/scenes/0/rerender/")

    assert response.status_code == 400
    assert "only a finished render" in response.json()["detail"]


def test_rerendering_with_another_users_photo_is_a_404(
    api, rendered, charlie, sample_files
):
    theirs = ProjectFactory(owner=charlie)
    photo = add_asset_from_path(theirs, sample_files["astronaut"])

    response = api.post(
        f"/api/jobs/{rendered.pk}/scenes/0/rerender/",
        {"image": photo.pk},
        format="json",
    )

    assert response.status_code == 404
    assert Job.objects.count() == 1


# --- priority and model on a single render --------------------------------------------


def test_a_render_can_be_asked_for_with_a_priority(api, small_project, farm_full):
    response = api.post(
        f"/api/projects/{small_project.pk}/render/",
        {"priority": "high", "model": "photo"},
        format="json",
    )

    assert response.status_code == 202, response.content
    assert response.json()["priority"] == "high"
    job = Job.objects.get()
    assert (job.priority, job.params["model"]) == (Job.Priority.HIGH, "photo")


def test_a_render_with_an_unknown_model_or_priority_is_a_400(api, small_project):
    model = api.post(
        f"/api/projects/{small_project.pk}/render/", {"model": "sdxl"}, format="json"
    )
    priority = api.post(
        f"/api/projects/{small_project.pk}/render/", {"priority": "asap"}, format="json"
    )

    assert model.status_code == 400
    assert model.json() == {"detail": "the model 'sdxl' is not in the registry"}
    assert priority.status_code == 400 and "priority" in priority.json()
    assert not Job.objects.exists()


# --- batches --------------------------------------------------------------------------


def test_a_json_batch_creates_one_job_per_render_with_its_priority(
    api, small_project, farm_full
):
    response = api.post(
        "/api/batches/",
        {
            "name": "Week 12",
            "renders": [
                {"project": small_project.pk, "preset": "square", "priority": "high"},
                {"project": small_project.pk, "format": "webm", "duration": 5},
                {"project": small_project.pk, "priority": "low"},
            ],
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    batch = Batch.objects.get()
    assert (body["id"], body["name"]) == (batch.pk, "Week 12")
    jobs = list(batch.jobs.order_by("id"))
    assert body["job_ids"] == [job.pk for job in jobs]
    assert [job.priority for job in jobs] == [2, 1, 0]
    assert [j["priority"] for j in body["jobs"]] == ["high", "normal", "low"]
    assert jobs[0].params["preset"] == "square"
    assert (jobs[1].params["format"], jobs[1].params["duration"]) == ("webm", 5.0)
    assert body["counts"] == {
        "total": 3,
        "queued": 3,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "review": 0,
    }
    listed = api.get("/api/batches/").json()
    assert [b["id"] for b in listed["results"]] == [batch.pk]
    assert listed["results"][0]["job_ids"] == body["job_ids"]
    assert "jobs" not in listed["results"][0]


def test_a_json_batch_lists_every_bad_render_and_creates_nothing(api, small_project):
    response = api.post(
        "/api/batches/",
        {
            "renders": [
                {"project": small_project.pk},
                {"project": small_project.pk, "preset": "imax", "duration": 1},
                {"preset": "square"},
            ]
        },
        format="json",
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [
        (2, "preset"),
        (2, "duration"),
        (3, "project"),
    ]
    assert not Batch.objects.exists() and not Job.objects.exists()


CSV_ONE_BAD_ROW = (
    "project,preset,format,priority\n"
    "{pk},square,mp4,high\n"
    "{pk},imax,mp4,low\n"
    "{pk},shorts,webm,high\n"
)


def test_a_csv_upload_with_one_bad_row_is_a_400_naming_it(api, small_project):
    text = CSV_ONE_BAD_ROW.format(pk=small_project.pk)

    response = api.post(
        "/api/batches/",
        {"file": SimpleUploadedFile("renders.csv", text.encode(), "text/csv")},
        format="multipart",
    )

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert (error["row"], error["field"]) == (3, "preset")
    assert "'imax' is not a valid preset" in error["message"]
    assert not Batch.objects.exists() and not Job.objects.exists()


def test_a_text_csv_body_with_one_bad_row_is_a_400_naming_it(api, small_project):
    text = CSV_ONE_BAD_ROW.format(pk=small_project.pk)

    response = api.generic("POST", "/api/batches/", text, content_type="text/csv")

    assert response.status_code == 400
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [
        (3, "preset")
    ]
    assert not Batch.objects.exists() and not Job.objects.exists()


def test_a_csv_batch_honours_its_priority_column(api, small_project, farm_full):
    text = (
        "\ufeffProject,Preset,Priority,Duration\n"
        f"{small_project.pk},square,high,\n"
        f"{small_project.pk},shorts,0,\n"
        ",,,\n"
        f"{small_project.pk},,,8\n"
    )

    upload = api.post(
        "/api/batches/",
        {
            "name": "From the sheet",
            "file": SimpleUploadedFile("r.csv", text.encode(), "text/csv"),
        },
        format="multipart",
    )
    raw = api.generic(
        "POST", "/api/batches/?name=Raw", text.encode(), content_type="text/csv"
    )

    assert upload.status_code == 201, upload.content
    assert raw.status_code == 201, raw.content
    for response, name in ((upload, "From the sheet"), (raw, "Raw")):
        batch = Batch.objects.get(pk=response.json()["id"])
        jobs = list(batch.jobs.order_by("id"))
        assert batch.name == name
        assert [j.priority for j in jobs] == [2, 0, 1]
        assert [j.params["preset"] for j in jobs] == ["square", "shorts", "preview"]
        assert jobs[2].params["duration"] == 8.0


def test_a_batch_of_a_project_not_ready_creates_nothing(api, alice, small_project):
    empty = ProjectFactory(owner=alice)

    response = api.post(
        "/api/batches/",
        {"renders": [{"project": small_project.pk}, {"project": empty.pk}]},
        format="json",
    )

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["row"] == 2
    assert "Upload at least one photo and a song" in error["message"]
    assert not Batch.objects.exists() and not Job.objects.exists()


def test_cancelling_a_batch_cancels_its_active_jobs(api, small_project, farm_full):
    created = api.post(
        "/api/batches/",
        {"renders": [{"project": small_project.pk}] * 3},
        format="json",
    ).json()
    done = Job.objects.get(pk=created["job_ids"][0])
    Job.objects.filter(pk=done.pk).update(status=Job.Status.SUCCEEDED)

    response = api.post(f"/api/batches/{created['id']}/cancel/")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["cancelled"] == created["job_ids"][1:]
    assert body["counts"]["cancelled"] == 2 and body["counts"]["succeeded"] == 1
    assert set(
        Job.objects.filter(batch_id=created["id"]).values_list("status", flat=True)
    ) == {"succeeded", "cancelled"}
    again = api.post(f"/api/batches/{created['id']}/cancel/")
    assert again.status_code == 202 and again.json()["cancelled"] == []


# --- parsing (what the upload page uses too) ------------------------------------------


def test_csv_rows_are_numbered_as_a_spreadsheet_shows_them(alice, small_project):
    text = f"project,style\n{small_project.pk},dreamy\n\n{small_project.pk},noir\n"

    with pytest.raises(BatchError) as refused:
        parse_batch_csv(text, alice)

    assert refused.value.errors == [
        {
            "row": 4,
            "field": "style",
            "message": "unknown style 'noir'; choose one of: "
            + ", ".join(k for k, _ in style_choices()),
        }
    ]


def test_a_csv_needs_a_project_column_and_known_columns(alice):
    with pytest.raises(BatchError) as refused:
        parse_batch_csv("title,colour\nx,y\n", alice)

    assert [(e["row"], e["field"]) for e in refused.value.errors] == [
        (1, "project"),
        (1, "title"),
        (1, "colour"),
    ]


def test_a_batch_is_limited_in_renders_and_in_size(alice, small_project, settings):
    settings.STUDIO_MAX_BATCH_RENDERS = 2
    rows = "".join(f"{small_project.pk}\n" for _ in range(3))

    with pytest.raises(BatchError, match="at most 2"):
        parse_batch_csv("project\n" + rows, alice)
    with pytest.raises(BatchError, match="at most 2"):
        parse_batch_json([{"project": small_project.pk}] * 3, alice)
    with pytest.raises(BatchError, match="larger than 1 MB"):
        parse_batch_csv("project\n" + "1\n" * (MAX_CSV_BYTES // 2), alice)


def test_priorities_and_durations_are_checked(alice, small_project):
    pk = small_project.pk
    items = [
        {"project": pk, "priority": 2},
        {"project": pk, "priority": "HIGH", "duration": "12.5"},
        {"project": pk, "priority": 7},
        {"project": pk, "duration": -3},
        {"project": pk, "duration": 4000},
        {"project": pk, "model": "nope"},
        {"project": pk, "colour": "red"},
    ]

    with pytest.raises(BatchError) as refused:
        parse_batch_json(items, alice)
    good = parse_batch_json(items[:2], alice)

    assert [(e["row"], e["field"]) for e in refused.value.errors] == [
        (3, "priority"),
        (4, "duration"),
        (5, "duration"),
        (6, "model"),
        (7, "colour"),
    ]
    assert [(r.priority, r.options) for r in good] == [
        (2, {}),
        (2, {"duration": 12.5}),
    ]


def test_submit_batch_creates_the_batch_and_its_jobs(alice, small_project, farm_full):
    batch = submit_batch(
        alice, "direct", [RenderRequest(small_project, {"preset": "square"}, 2)]
    )

    (job,) = batch.jobs.all()
    assert (job.priority, job.params["preset"], job.owner) == (2, "square", alice)
    assert JobStage.objects.filter(job=job).count() == 5


# --- owner isolation ------------------------------------------------------------------


def test_charlie_cannot_act_on_alices_jobs(charlie_api, alice, rendered):
    queued = JobFactory(project=rendered.project)
    failed = JobFactory(project=rendered.project, status=Job.Status.FAILED)

    responses = [
        charlie_api.post(f"/api/jobs/{queued.pk}/cancel/"),
        charlie_api.post(f"/api/jobs/{failed.pk}/retry/"),
        charlie_api.post(f"/api/jobs/{rendered.pk}/scenes/0/rerender/"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert Job.objects.get(pk=queued.pk).status == Job.Status.QUEUED
    assert Job.objects.get(pk=failed.pk).status == Job.Status.FAILED
    assert Job.objects.count() == 3


def test_charlie_cannot_see_or_cancel_alices_batches(
    api, charlie_api, small_project, farm_full
):
    created = api.post(
        "/api/batches/", {"renders": [{"project": small_project.pk}]}, format="json"
    ).json()

    listed = charlie_api.get("/api/batches/").json()
    detail = charlie_api.get(f"/api/batches/{created['id']}/")
    cancel = charlie_api.post(f"/api/batches/{created['id']}/cancel/")

    assert listed["count"] == 0
    assert detail.status_code == 404 and cancel.status_code == 404
    assert Job.objects.get().status == Job.Status.QUEUED
    assert api.get(f"/api/batches/{created['id']}/").status_code == 200


def test_alices_project_in_charlies_batch_reads_like_a_missing_one(
    charlie_api, small_project
):
    missing = small_project.pk + 1000

    response = charlie_api.post(
        "/api/batches/",
        {"renders": [{"project": small_project.pk}, {"project": missing}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"row": 1, "field": "project", "message": f"no project {small_project.pk}"},
        {"row": 2, "field": "project", "message": f"no project {missing}"},
    ]
    assert not Batch.objects.exists() and not Job.objects.exists()


def test_the_new_routes_are_refused_to_anonymous_callers():
    anonymous = APIClient()

    assert anonymous.get("/api/batches/").status_code == 403
    assert anonymous.post("/api/batches/", {}, format="json").status_code == 403
    assert anonymous.post("/api/jobs/1/cancel/").status_code == 403


def test_urgent_priority_is_for_staff(alice, small_project, farm_full):
    from projects.pipeline import PriorityNotAllowed, start_render

    with pytest.raises(PriorityNotAllowed, match="for staff"):
        start_render(small_project, priority=Job.Priority.URGENT)
    alice.is_staff = True
    alice.save()
    small_project.refresh_from_db()
    job = start_render(small_project, priority=Job.Priority.URGENT)
    assert job.priority == Job.Priority.URGENT
