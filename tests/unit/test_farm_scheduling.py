"""Admission to the farm: per-user and farm-wide limits, priorities, fair
shares between users, and what happens when a job ends or is retried."""

from __future__ import annotations

import pytest
from celery import signature
from django.utils import timezone

from media_jobs import control, lifecycle, scheduler
from media_jobs.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The jobs whose canvases the scheduler sent, in order. A test job kind
    whose canvas is recorded rather than run: admission is what is tested."""
    sent_ids: list[int] = []
    monkeypatch.setattr(
        scheduler,
        "send_canvas",
        lambda job_id, canvas, on_error: sent_ids.append(job_id),
    )
    return sent_ids


def _queued(owner, priority=Job.Priority.NORMAL) -> Job:
    return JobFactory(
        owner=owner, project=None, kind=Job.Kind.RENDER, priority=priority,
        status=Job.Status.QUEUED, params={"stages_finished": []},
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _render_kind_records_nothing(monkeypatch):
    # The real render canvas needs a project; admission only needs a canvas.
    monkeypatch.setitem(
        scheduler._kinds,
        Job.Kind.RENDER,
        scheduler.KindSpec(
            build=lambda job: signature("projects.assemble_render", args=(job.pk,)),
            on_error="projects.render_failed",
        ),
    )


def test_one_users_fifty_renders_do_not_starve_another_user(settings, alice, bob, sent):
    settings.STUDIO_MAX_RUNNING_JOBS = 3
    settings.STUDIO_MAX_RUNNING_JOBS_PER_USER = 2
    alices = [_queued(alice) for _ in range(50)]
    bobs = _queued(bob)  # asked after all of alice's

    scheduler.admit()

    assert sent == [alices[0].pk, bobs.pk, alices[1].pk]
    waiting = Job.objects.filter(dispatched_at=None).count()
    assert waiting == 48


def test_a_user_never_has_more_running_jobs_than_the_limit(settings, alice, sent):
    settings.STUDIO_MAX_RUNNING_JOBS = 10
    settings.STUDIO_MAX_RUNNING_JOBS_PER_USER = 2
    for _ in range(5):
        _queued(alice)

    scheduler.admit()
    scheduler.admit()

    assert len(sent) == 2
    assert Job.objects.get(pk=sent[0]).dispatched_at is not None


def test_a_finished_job_frees_its_slot_for_the_next_one(settings, alice, sent):
    settings.STUDIO_MAX_RUNNING_JOBS_PER_USER = 1
    first, second = _queued(alice), _queued(alice)
    scheduler.admit()
    assert sent == [first.pk]

    lifecycle.claim(first.pk)
    lifecycle.succeed(first.pk)  # announces the change; admission follows

    assert sent == [first.pk, second.pk]


def test_a_render_held_for_review_gives_its_slot_to_the_next_one(settings, alice, sent):
    settings.STUDIO_MAX_RUNNING_JOBS_PER_USER = 1
    first, second = _queued(alice), _queued(alice)
    scheduler.admit()
    lifecycle.claim(first.pk)

    lifecycle.hold_for_review(first.pk, "2 scenes await review")

    assert sent == [first.pk, second.pk]


def test_a_higher_priority_job_goes_first(settings, alice, bob, sent):
    settings.STUDIO_MAX_RUNNING_JOBS = 1
    _queued(alice)
    urgent = _queued(bob, priority=Job.Priority.URGENT)

    scheduler.admit()

    assert sent == [urgent.pk]


def test_among_equals_the_user_with_fewer_jobs_on_the_farm_goes_first(
    settings, alice, bob, sent
):
    settings.STUDIO_MAX_RUNNING_JOBS = 2
    settings.STUDIO_MAX_RUNNING_JOBS_PER_USER = 5
    first = _queued(alice)
    scheduler.admit()
    later_alice, bobs = _queued(alice), _queued(bob)

    scheduler.admit()

    assert sent == [first.pk, bobs.pk]
    assert Job.objects.get(pk=later_alice.pk).dispatched_at is None


def test_song_analysis_does_not_wait_for_a_slot(settings, alice, sent, monkeypatch):
    settings.STUDIO_MAX_RUNNING_JOBS = 0
    monkeypatch.setitem(
        scheduler._kinds,
        Job.Kind.ANALYZE,
        scheduler.KindSpec(
            build=lambda job: signature("projects.analyze_song", args=(job.pk,)),
            on_error="projects.job_failed",
            limited=False,
        ),
    )
    render = _queued(alice)
    analysis = JobFactory(
        owner=alice, project=None, kind=Job.Kind.ANALYZE, status=Job.Status.QUEUED
    )

    scheduler.admit()

    assert sent == [analysis.pk]
    assert (
        Job.objects.get(pk=render.pk).message == "waiting for a free slot on the farm"
    )


def test_a_cancelled_waiting_job_is_never_sent(settings, alice, sent):
    settings.STUDIO_MAX_RUNNING_JOBS = 0
    job = _queued(alice)
    scheduler.admit()
    control.cancel(job)
    settings.STUDIO_MAX_RUNNING_JOBS = 5

    scheduler.admit()

    assert sent == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def test_a_second_cancel_is_refused(alice, settings, sent):
    settings.STUDIO_MAX_RUNNING_JOBS = 0
    job = _queued(alice)
    control.cancel(job)

    with pytest.raises(control.JobActionRefused, match="already cancelled"):
        control.cancel(job)


def test_a_retried_job_is_queued_again_and_sent(alice, settings, sent):
    job = _queued(alice)
    scheduler.admit()
    lifecycle.claim(job.pk)
    lifecycle.fail(job.pk, "scene 2: broken.jpg: not an image that can be read")
    sent.clear()

    control.retry(job)

    job.refresh_from_db()
    assert (job.status, job.error, job.attempts) == (Job.Status.QUEUED, "", 2)
    assert sent == [job.pk]


def test_only_a_failed_or_cancelled_job_can_be_retried(alice, sent):
    job = _queued(alice)
    with pytest.raises(control.JobActionRefused, match="only a failed or cancelled"):
        control.retry(job)


def test_a_task_of_an_earlier_attempt_cannot_start_a_retry_waiting_for_a_slot(
    alice, settings, sent
):
    job = _queued(alice)
    scheduler.admit()
    lifecycle.claim(job.pk)
    lifecycle.fail(job.pk, "scene 1 failed")
    settings.STUDIO_MAX_RUNNING_JOBS = 0
    control.retry(job)  # queued again, waiting for a slot

    assert lifecycle.claim(job.pk) is False  # a leftover scene task of attempt 1
    job.refresh_from_db()
    assert (job.status, job.dispatched_at) == (Job.Status.QUEUED, None)


def test_a_late_failure_of_an_earlier_attempt_leaves_the_retry_alone(alice, sent):
    job = _queued(alice)
    scheduler.admit()
    lifecycle.claim(job.pk)
    lifecycle.fail(job.pk, "scene 1 failed", attempt=1)
    control.retry(job)  # attempt 2, admitted at once
    lifecycle.claim(job.pk)

    # The first attempt's chord completes late and calls its error callback.
    assert lifecycle.fail(job.pk, "ChordError: scene 1", attempt=1) is False
    assert lifecycle.fail(job.pk, "scene 2 failed", attempt=2) is True


def test_a_job_whose_canvas_cannot_be_made_fails_without_blocking_others(
    alice, bob, sent, monkeypatch
):
    def build(job):
        if job.owner_id == alice.pk:
            raise ValueError("the model 'sdxl' is disabled in the registry")
        return signature("projects.assemble_render", args=(job.pk,))

    monkeypatch.setitem(
        scheduler._kinds,
        Job.Kind.RENDER,
        scheduler.KindSpec(build=build, on_error="projects.render_failed"),
    )
    broken, fine = _queued(alice), _queued(bob)

    scheduler.admit()

    broken.refresh_from_db()
    assert sent == [fine.pk]
    assert broken.status == Job.Status.FAILED
    assert "disabled in the registry" in broken.error


def test_a_job_run_by_a_process_that_ended_is_failed_without_a_broker(
    alice, settings, sent
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    job = _queued(alice)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.RUNNING,
        dispatched_at=timezone.now(),
        params={"runner": "an-earlier-process"},
    )

    scheduler.admit()

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "restarted" in job.error
