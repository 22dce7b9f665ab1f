"""What an owner can do to a job: cancel it, retry what failed."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from . import lifecycle
from .models import Job

logger = logging.getLogger(__name__)


class JobActionRefused(ValueError):
    """The job is not in a state where this action makes sense."""


def _revoke(task_ids: list[str]) -> None:
    """Tell the workers to drop these tasks, and to interrupt the ones
    running: SIGUSR1 raises the soft time limit in the task, so it unwinds
    (its ffmpeg stopped, its scratch removed) instead of being killed."""
    if not task_ids or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    from studio_site.celery import app

    try:
        app.control.revoke(task_ids, terminate=True, signal="SIGUSR1")
    except Exception:
        # The job is already cancelled in the database, and every task checks
        # it before and while it works; revoking only makes that faster.
        logger.warning("could not revoke tasks %s", task_ids, exc_info=True)


def cancel(job: Job) -> None:
    """Cancel a queued or running job: queued tasks are revoked, running ones
    stop at once (they see the status at their next progress report)."""
    if not lifecycle.cancel(job.pk):
        job.refresh_from_db(fields=["status"])
        raise JobActionRefused(f"job #{job.pk} is already {job.status}")
    job.refresh_from_db()
    ids = [job.task_id, *job.task_ids] if job.task_id else list(job.task_ids)
    transaction.on_commit(lambda: _revoke([i for i in ids if i]))


def retry(job: Job) -> None:
    """Queue a failed or cancelled job again; the scheduler sends only what it
    has left to do (finished stages and scenes stay)."""
    if not lifecycle.requeue(job.pk):
        job.refresh_from_db(fields=["status"])
        raise JobActionRefused(
            f"job #{job.pk} is {job.status}; only a failed or cancelled job"
            " can be retried"
        )
