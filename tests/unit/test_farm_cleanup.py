"""A render that fails or is cancelled leaves nothing running: its unfinished
scenes are cancelled, its project shows the outcome, and its tasks still
queued or running are revoked (``projects.receivers``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.files.storage import default_storage

from media_jobs import control, records
from media_jobs.models import Job, RunStatus, TaskRun
from projects.models import Project, Scene
from projects.pipeline import create_render_job, start_render
from projects.tasks import (
    PipelineError,
    analyze_music,
    plan_scenes,
    render_failed,
    render_scene,
)
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def revoked(monkeypatch) -> list[str]:
    """The ids handed to the workers' revoke (which needs a broker)."""
    ids: list[str] = []
    monkeypatch.setattr(control, "_revoke", lambda task_ids: ids.extend(task_ids))
    return ids


@pytest.fixture
def planned(alice, sample_files, monkeypatch) -> Job:
    """A render whose scenes were planned and sent (their tasks recorded as
    queued) but not run yet; scene 0 then rendered, scene 1 running on a
    worker."""
    project = ProjectFactory(owner=alice, target_duration=12.0, preset="preview")
    for name in ("astronaut", "hopper", "song"):
        add_asset_from_path(project, sample_files[name])
    monkeypatch.setattr("projects.tasks.fan_out", lambda task, canvas: None)
    job = create_render_job(project)
    analyze_music.apply(args=(job.pk,))
    plan_scenes.apply(args=(job.pk,))
    scenes = list(Scene.objects.filter(job=job).order_by("index"))
    assert len(scenes) >= 3, "the test needs scenes left to cancel"
    assert render_scene.apply(args=(scenes[0].pk,)).successful()
    records.task_started(
        job.pk,
        "scene-1",
        stage="scenes",
        request=SimpleNamespace(id="scene-1-on-a-worker", hostname="gpu@farm"),
    )
    Scene.objects.filter(pk=scenes[1].pk).update(status=Scene.Status.RUNNING)
    job.refresh_from_db()
    return job


def _statuses(job: Job) -> list[str]:
    return list(
        Scene.objects.filter(job=job).order_by("index").values_list("status", flat=True)
    )


def _outstanding(job: Job) -> set[str]:
    """Ids of the tasks sent and not finished: queued or running."""
    runs = TaskRun.objects.filter(
        job=job, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    )
    return set(runs.values_list("task_id", flat=True)) | set(job.task_ids)


def test_a_failed_render_cancels_its_other_scenes_and_fails_the_project(
    planned, revoked, django_capture_on_commit_callbacks
):
    job = planned
    scenes = list(Scene.objects.filter(job=job).order_by("index"))
    # Scene 2's photo is damaged: its task fails, and so does the render.
    Path(default_storage.path(scenes[2].image.file.name)).write_bytes(b"\0" * 64)
    with pytest.raises(PipelineError) as failure:
        render_scene.apply(args=(scenes[2].pk,))
    outstanding = _outstanding(job)
    assert "scene-1-on-a-worker" in outstanding
    done_id = TaskRun.objects.get(job=job, key="scene-0").task_id

    with django_capture_on_commit_callbacks(execute=True):
        render_failed(None, failure.value, None, job.pk)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    statuses = _statuses(job)
    assert statuses[:3] == [
        Scene.Status.DONE,
        Scene.Status.CANCELLED,
        Scene.Status.FAILED,
    ]
    assert set(statuses[3:]) <= {Scene.Status.CANCELLED}
    assert Project.objects.get(pk=job.project_id).status == Project.Status.FAILED
    assert outstanding <= set(revoked)
    assert done_id not in revoked


def test_a_cancelled_render_cancels_its_scenes_and_the_project_can_render_again(
    planned, revoked, django_capture_on_commit_callbacks
):
    job = planned
    outstanding = _outstanding(job)

    with django_capture_on_commit_callbacks(execute=True):
        control.cancel(job)

    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    statuses = _statuses(job)
    assert statuses[0] == Scene.Status.DONE
    assert set(statuses[1:]) == {Scene.Status.CANCELLED}
    project = Project.objects.get(pk=job.project_id)
    assert project.status == Project.Status.DRAFT  # it has no render yet
    assert outstanding <= set(revoked)

    again = start_render(project)
    assert again.pk != job.pk and again.status == Job.Status.QUEUED
