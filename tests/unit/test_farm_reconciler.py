"""The periodic reconciler and the redelivery cap: a job whose tasks were
lost is finished from where it stood, and one that keeps stalling, or a task
that keeps losing its worker, is failed with a reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from media_jobs import records
from media_jobs.models import Job, TaskRun
from media_jobs.reconciler import reconcile
from projects.models import Render, Scene
from projects.pipeline import create_render_job
from projects.tasks import analyze_music, find_character, plan_scenes, render_scene
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _inline(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.STUDIO_RUN_TASKS_IN_THREAD = False
    settings.STUDIO_STALE_JOB_S = 60


@pytest.fixture
def project(alice, sample_files):
    project = ProjectFactory(owner=alice, target_duration=6.0, preset="preview")
    for name in ("astronaut", "hopper", "song"):
        add_asset_from_path(project, sample_files[name])
    return project


def _age(job: Job, seconds: float = 600) -> None:
    Job.objects.filter(pk=job.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds),
        dispatched_at=timezone.now() - timedelta(seconds=seconds),
    )


def test_a_job_whose_chord_was_lost_is_finished_from_where_it_stood(
    project, monkeypatch, settings
):
    # The chord never ran: its message went with a broker that lost it.
    monkeypatch.setattr("projects.tasks.fan_out", lambda task, canvas: None)
    job = create_render_job(project)
    analyze_music.apply(args=(job.pk,))
    find_character.apply(args=(job.pk,))
    plan_scenes.apply(args=(job.pk,))
    first = Scene.objects.filter(job=job).order_by("index").first()
    render_scene.apply(args=(first.pk,))  # one scene got done before the loss
    # Its other scenes were queued and never heard of again: after the
    # deadline for queued work, the job is sent again.
    settings.STUDIO_STALE_QUEUED_S = 300
    _age(job)
    TaskRun.objects.filter(job=job).update(
        updated_at=timezone.now() - timedelta(seconds=600)
    )

    outcome = reconcile()

    job.refresh_from_db()
    assert outcome.resumed == [job.pk]
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Render.objects.filter(job=job).count() == 1
    # The scene done before the loss was not made again.
    assert TaskRun.objects.get(job=job, key="scene-0").deliveries == 1
    assert job.params["resumes"] == 1


def test_a_job_that_keeps_stalling_is_failed_after_the_cap(project, settings):
    settings.STUDIO_MAX_DELIVERIES = 2
    job = create_render_job(project)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, params={**job.params, "resumes": 2}
    )
    _age(job)

    outcome = reconcile()

    job.refresh_from_db()
    assert outcome.failed == [job.pk]
    assert job.status == Job.Status.FAILED
    assert "stopped making progress" in job.error


def test_a_job_that_moves_is_left_alone(project, monkeypatch):
    job = create_render_job(project)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING, dispatched_at=timezone.now()
    )
    sent = []
    monkeypatch.setattr(
        "media_jobs.reconciler.send_canvas", lambda *args: sent.append(args)
    )

    outcome = reconcile()

    assert (outcome.resumed, outcome.failed, sent) == ([], [], [])


def test_a_waiting_job_is_admitted_when_a_slot_is_free(project, settings):
    settings.STUDIO_MAX_RUNNING_JOBS = 0
    job = create_render_job(project)  # created, not submitted: no one admits it
    settings.STUDIO_MAX_RUNNING_JOBS = 4

    outcome = reconcile()

    job.refresh_from_db()
    assert outcome.admitted == [job.pk]
    assert job.status == Job.Status.SUCCEEDED, job.error


def test_a_task_that_keeps_losing_its_worker_is_given_up(project, settings):
    settings.STUDIO_MAX_DELIVERIES = 3
    job = create_render_job(project)
    for _ in range(3):
        records.task_started(job.pk, "scene-4", stage="scenes", scene_index=4)

    with pytest.raises(records.TooManyDeliveries, match="lost its worker 3 times"):
        records.task_started(job.pk, "scene-4", stage="scenes", scene_index=4)
    assert TaskRun.objects.get(job=job, key="scene-4").deliveries == 4


def test_a_job_whose_scenes_wait_in_a_busy_queue_is_not_stale(project, settings):
    settings.STUDIO_STALE_QUEUED_S = 6 * 3600
    job = create_render_job(project)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    records.tasks_queued(
        job.pk, [{"key": "scene-0", "stage": "scenes", "task_name": "t"}]
    )
    TaskRun.objects.filter(job=job).update(
        updated_at=timezone.now() - timedelta(seconds=600)
    )
    _age(job)

    assert reconcile().resumed == []
    TaskRun.objects.filter(job=job).update(
        updated_at=timezone.now() - timedelta(hours=7)
    )
    _age(job, 7 * 3600)
    assert reconcile().resumed == [job.pk]


def test_a_running_task_that_beats_keeps_its_job_alive(project):
    job = create_render_job(project)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    records.task_started(job.pk, "scene-0", stage="scenes", scene_index=0)
    _age(job)  # the job row itself has not moved for ten minutes

    assert records.task_progress(job.pk, "scene-0", 0.5)
    assert reconcile().resumed == []
