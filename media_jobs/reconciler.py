"""The periodic reconciler (Celery beat, ``media_jobs.reconcile``).

Tasks are acknowledged late and redelivered when a worker dies, but some
losses leave nothing to redeliver: a chord's counter gone with a Redis
restart, a canvas lost between commit and send. A job on the farm whose row
has not moved for ``STUDIO_STALE_JOB_S`` is sent again from where it stands
(its finished stages and scenes are skipped, every task is safe to run
twice), and failed after ``STUDIO_MAX_DELIVERIES`` such restarts. Waiting
jobs are admitted, in case a slot freed without anyone noticing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import lifecycle, scheduler
from .models import Job, WorkerHeartbeat
from .orchestration import send_canvas

logger = logging.getLogger(__name__)


@dataclass
class Reconciled:
    admitted: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[int]]:
        return {
            "admitted": self.admitted,
            "resumed": self.resumed,
            "failed": self.failed,
        }


def _stale_jobs() -> list[int]:
    # A cheap first cut (the job row has not moved for the shorter deadline),
    # then the full test, which looks at the job's tasks' heartbeats.
    cutoff = timezone.now() - lifecycle.stale_after()
    candidates = Job.objects.filter(
        status__in=Job.ACTIVE_STATUSES,
        dispatched_at__isnull=False,
        updated_at__lt=cutoff,
    )
    return [job.pk for job in candidates if lifecycle.is_stale(job)]


def _resume_or_fail(job_id: int, outcome: Reconciled) -> None:
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status__in=Job.ACTIVE_STATUSES)
            .first()
        )
        if job is None or not lifecycle.is_stale(job):  # it moved meanwhile
            return
        resumes = int(job.params.get("resumes", 0))
        if resumes >= settings.STUDIO_MAX_DELIVERIES:
            give_up = True
        else:
            give_up = False
            job.params = {**job.params, "resumes": resumes + 1}
            job.save(update_fields=["params", "updated_at"])
            spec = scheduler.kind_spec(job.kind)
            canvas = spec.build(job)
            transaction.on_commit(lambda: send_canvas(job_id, canvas, spec.on_error))
    if give_up:
        if lifecycle.fail(
            job_id,
            "the job stopped making progress and was given up after"
            f" {resumes} restarts",
        ):
            outcome.failed.append(job_id)
    else:
        logger.warning("job %s stopped making progress; sent again", job_id)
        outcome.resumed.append(job_id)


def reconcile() -> Reconciled:
    outcome = Reconciled()
    for job_id in _stale_jobs():
        try:
            _resume_or_fail(job_id, outcome)
        except Exception as exc:  # one job's trouble must not stop the others
            logger.exception("reconciling job %s failed", job_id)
            if lifecycle.fail(job_id, lifecycle.describe_error(exc)):
                outcome.failed.append(job_id)
    outcome.admitted = scheduler.admit()
    forget_silent_workers()
    return outcome


# A worker silent this many stale windows was killed, not paused: its row goes.
SILENT_WINDOWS = 10


def forget_silent_workers() -> int:
    """Remove the heartbeats of worker processes that stopped without saying
    so (killed at a hard time limit, out of memory); the count removed."""
    since = timezone.now() - timedelta(
        seconds=SILENT_WINDOWS * settings.STUDIO_HEARTBEAT_STALE_S
    )
    removed, _ = WorkerHeartbeat.objects.filter(last_seen__lt=since).delete()
    return removed
