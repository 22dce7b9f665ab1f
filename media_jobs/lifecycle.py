"""State changes of a job. Each checks the current status under a row lock and
says whether this caller made the change, so a task delivered twice, or a
failure reported by two paths at once, changes the job exactly once."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import Job
from .progress import change_and_publish

logger = logging.getLogger(__name__)


def claim(job_id: int, task_id: str = "") -> bool:
    """Move a queued job to running; False if someone else already did."""
    changes: dict[str, object] = {
        "status": Job.Status.RUNNING,
        "started_at": timezone.now(),
    }
    if task_id:
        changes["task_id"] = task_id
    return change_and_publish(job_id, [Job.Status.QUEUED], changes)


def succeed(job_id: int, message: str = "finished") -> bool:
    changes = {
        "status": Job.Status.SUCCEEDED,
        "progress": 1.0,
        "stage": "done",
        "message": message[:500],
        "finished_at": timezone.now(),
    }
    return change_and_publish(job_id, [Job.Status.RUNNING], changes)


def fail(job_id: int, error: str) -> bool:
    """Mark the job failed with a reason for the user; True only the first time."""
    changes = {
        "status": Job.Status.FAILED,
        "stage": "failed",
        "message": "failed",
        "error": error[:4000],
        "finished_at": timezone.now(),
    }
    failed = change_and_publish(job_id, Job.ACTIVE_STATUSES, changes)
    if failed:
        logger.info("job %s failed: %s", job_id, error)
    return failed


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


def _stale_after() -> timedelta:
    # No stage of a live job goes longer than one task's hard limit without
    # writing progress to its row.
    return timedelta(seconds=settings.TASK_TIME_LIMIT + 60)


def live_jobs(jobs: QuerySet[Job]) -> list[Job]:
    """The queued and running jobs among ``jobs``, oldest first, after failing
    those that stopped reporting (their worker or web process died), so a
    dead job cannot block its project for ever."""
    live = []
    for job in jobs.filter(status__in=Job.ACTIVE_STATUSES).order_by("created_at"):
        if timezone.now() - job.updated_at > _stale_after():
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
