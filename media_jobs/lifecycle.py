"""State changes of a job. Each checks the current status under a row lock and
says whether this caller made the change, so a task delivered twice, or a
failure reported by two paths at once, changes the job exactly once."""

from __future__ import annotations

import logging

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


def is_running(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).exists()


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


def append_log(job_id: int, line: str) -> None:
    job = Job.objects.filter(pk=job_id).only("log").first()
    if job is None:
        return
    stamp = timezone.now().strftime("%H:%M:%S")
    Job.objects.filter(pk=job_id).update(log=f"{job.log}{stamp} {line}\n"[-20000:])


def describe_error(exc: BaseException) -> str:
    """A sentence for the user. Our engines raise ValueError/RuntimeError
    subclasses with user-facing messages; anything else is named by type."""
    if isinstance(exc, ValueError | RuntimeError | OSError) and str(exc):
        return str(exc)
    name = type(exc).__name__
    return f"internal error ({name}): {exc}" if str(exc) else f"internal error ({name})"
