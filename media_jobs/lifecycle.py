"""State changes of a job. Each checks the current status under a row lock and
says whether this caller made the change, so a task delivered twice, or a
failure reported by two paths at once, changes the job exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from . import records
from .models import Job, RunStatus
from .progress import change_and_publish
from .signals import job_state_changed

logger = logging.getLogger(__name__)


def _announce(job_id: int, status: str) -> None:
    transaction.on_commit(
        lambda: job_state_changed.send(sender=Job, job_id=job_id, status=status)
    )


def _changed(
    job_id: int,
    from_statuses: Any,
    changes: dict[str, Any],
    also: Callable[[], None] | None = None,
) -> bool:
    changed = change_and_publish(job_id, from_statuses, changes, also=also)
    if changed:
        _announce(job_id, changes["status"])
    return changed


def claim(job_id: int) -> bool:
    """Move a queued job to running; False if someone else already did (or
    the job is not queued: cancelled before its first task started).

    A retried job waits for the scheduler to send it again: a task left over
    from its earlier attempt must not start it meanwhile (that task would
    run outside the limits, and the scheduler would never send the retry).
    """
    waiting_retry = Job.objects.filter(
        pk=job_id, attempts__gt=1, dispatched_at=None
    ).exists()
    if waiting_retry:
        return False
    changes: dict[str, object] = {
        "status": Job.Status.RUNNING,
        "started_at": timezone.now(),
    }
    return _changed(job_id, [Job.Status.QUEUED], changes)


def succeed(job_id: int, message: str = "finished") -> bool:
    changes = {
        "status": Job.Status.SUCCEEDED,
        "progress": 1.0,
        "stage": "done",
        "message": message[:500],
        "finished_at": timezone.now(),
    }
    return _changed(job_id, [Job.Status.RUNNING], changes)


def fail(job_id: int, error: str, attempt: int | None = None) -> bool:
    """Mark the job failed with a reason for the user; True only the first
    time. ``attempt``: the attempt the failure belongs to (an error callback
    of an earlier attempt's canvas must not fail its retry)."""
    if (
        attempt is not None
        and not Job.objects.filter(pk=job_id, attempts=attempt).exists()
    ):
        logger.info("job %s: a failure of attempt %s came late", job_id, attempt)
        return False
    changes = {
        "status": Job.Status.FAILED,
        "stage": "failed",
        "message": "failed",
        "error": error[:4000],
        "finished_at": timezone.now(),
    }
    failed = _changed(
        job_id,
        Job.ACTIVE_STATUSES,
        changes,
        also=lambda: records.end_job_stages(job_id, RunStatus.FAILED),
    )
    if failed:
        logger.info("job %s failed: %s", job_id, error)
    return failed


def cancel(job_id: int, reason: str = "cancelled by its owner") -> bool:
    """Mark a queued, running or held job cancelled; True only the first
    time. Its tasks see it at their next progress report and stop."""
    changes = {
        "status": Job.Status.CANCELLED,
        "stage": "cancelled",
        "message": reason[:500],
        "finished_at": timezone.now(),
    }
    return _changed(
        job_id,
        Job.CANCELLABLE_STATUSES,
        changes,
        also=lambda: records.end_job_stages(job_id, RunStatus.CANCELLED),
    )


def hold_for_review(job_id: int, message: str) -> bool:
    """A running job whose work waits for its owner's decision (scenes that
    failed the consistency gate): it stops here, holding no slot, until
    ``resume`` queues it again."""
    changes = {"status": Job.Status.REVIEW, "stage": "review", "message": message}
    return _changed(job_id, [Job.Status.RUNNING], changes)


def resume(job_id: int) -> bool:
    """A job held for review, queued again once its scenes are decided."""
    return requeue(job_id, from_statuses=(Job.Status.REVIEW,), message="reviewed")


def requeue(
    job_id: int,
    *,
    from_statuses: tuple[str, ...] = (Job.Status.FAILED, Job.Status.CANCELLED),
    message: str = "queued again",
) -> bool:
    """A failed or cancelled job queued again (retry): the work it finished
    stays, the scheduler sends what is left."""
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status__in=from_statuses)
            .first()
        )
        if job is None:
            return False
        changes = {
            "status": Job.Status.QUEUED,
            "stage": "queued",
            "message": message,
            "error": "",
            "finished_at": None,
            "dispatched_at": None,
            "attempts": job.attempts + 1,
            # A retry gets the reconciler's full budget of restarts again.
            "params": {k: v for k, v in job.params.items() if k != "resumes"},
        }
        records.reopen_stages(job_id)
        return _changed(job_id, [job.status], changes)


def stage_finished(job: Job, stage: str) -> bool:
    return stage in job.params.get("stages_finished", [])


def finish_stage(
    job_id: int,
    stage: str,
    seconds: float,
    message: str = "",
    params: dict[str, Any] | None = None,
) -> bool:
    """Record that ``stage`` of a running job is done, with its time and any
    ``params`` it settled; True only for the first caller, so a second
    delivery of a stage can tell that its work was already taken."""
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status=Job.Status.RUNNING)
            .first()
        )
        if job is None or stage_finished(job, stage):
            return False
        records.finish_stage(job_id, stage, seconds, message=message)
        timings = {**job.params.get("timings", {}), stage: round(seconds, 3)}
        finished = [*job.params.get("stages_finished", []), stage]
        changes: dict[str, Any] = {
            "params": {
                **job.params,
                **(params or {}),
                "timings": timings,
                "stages_finished": finished,
            }
        }
        if message:
            changes["message"] = message[:500]
        return change_and_publish(job_id, [Job.Status.RUNNING], changes)


def stale_after() -> timedelta:
    # No running task goes longer than its hard limit without a heartbeat.
    return timedelta(seconds=settings.STUDIO_STALE_JOB_S)


def is_stale(job: Job) -> bool:
    """True when nothing of the job has moved for longer than it could
    legitimately stand still: a running task beats at least once per hard
    time limit; a task waiting behind a busy queue may wait much longer
    (``STUDIO_STALE_QUEUED_S``). A job waiting for a slot is never stale."""
    if job.status not in Job.ACTIVE_STATUSES or job.dispatched_at is None:
        return False
    moved, waiting = records.last_activity(job)
    limit = settings.STUDIO_STALE_QUEUED_S if waiting else settings.STUDIO_STALE_JOB_S
    return timezone.now() - moved > timedelta(seconds=limit)


def live_jobs(jobs: QuerySet[Job]) -> list[Job]:
    """The queued and running jobs among ``jobs``, oldest first, after failing
    those that stopped reporting (their worker or web process died), so a
    dead job cannot block its project for ever. A job still waiting for a
    slot is not stale: nothing of it runs yet."""
    live = []
    for job in jobs.filter(status__in=Job.ACTIVE_STATUSES).order_by("created_at"):
        if is_stale(job):
            fail(job.pk, "the job stopped reporting progress and was given up")
        else:
            live.append(job)
    return live


def describe_error(exc: BaseException) -> str:
    """A sentence for the user. Our engines raise ValueError/RuntimeError
    subclasses with user-facing messages; anything else is named by type."""
    if isinstance(exc, ValueError | RuntimeError | OSError) and str(exc):
        return str(exc)
    name = type(exc).__name__
    return f"internal error ({name}): {exc}" if str(exc) else f"internal error ({name})"
