"""Admission: which queued jobs the farm starts now.

A job is created ``queued`` without sending anything; ``admit`` sends the
canvases of the jobs that may start, under one database lock so two web or
worker processes never admit the same job or overshoot a limit:

- at most ``STUDIO_MAX_RUNNING_JOBS`` jobs are on the farm at once, and at
  most ``STUDIO_MAX_RUNNING_JOBS_PER_USER`` of one user's;
- a free slot goes to the highest priority waiting, and among equals to the
  user with the fewest jobs on the farm, then to the oldest job, so one
  user's fifty renders queue behind each other rather than in front of
  everyone else's.

``admit`` runs when a job is submitted, when one ends, and from the periodic
reconciler. Kinds registered as unlimited (song analysis, seconds of work
that a page is waiting for) start at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.canvas import Signature
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import lifecycle
from .models import Job
from .orchestration import PROCESS_ID, send_canvas

logger = logging.getLogger(__name__)

_ADVISORY_LOCK = 0x5354_5544  # "STUD": one admission at a time per database


@dataclass(frozen=True)
class KindSpec:
    build: Callable[[Job], Signature]
    on_error: str
    limited: bool = True


_kinds: dict[str, KindSpec] = {}


def register_kind(
    kind: str, build: Callable[[Job], Signature], on_error: str, *, limited: bool = True
) -> None:
    """Say how a job of ``kind`` runs: ``build(job)`` makes its canvas from
    where it stands (a retried job resumes), ``on_error`` fails it."""
    _kinds[kind] = KindSpec(build, on_error, limited)


def kind_spec(kind: str) -> KindSpec:
    try:
        return _kinds[kind]
    except KeyError:
        raise LookupError(
            f"no canvas is registered for jobs of kind {kind!r}"
        ) from None


def submit(job: Job) -> None:
    """Ask for ``job`` (created queued) to run once this transaction commits.
    (A batch submits each of its jobs; the passes after the first find
    nothing left that may start, a few queries each.)"""
    transaction.on_commit(admit)


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])


def _choose(waiting: list[Job], on_farm: list[Job]) -> list[Job]:
    per_user_limit = settings.STUDIO_MAX_RUNNING_JOBS_PER_USER
    farm_limit = settings.STUDIO_MAX_RUNNING_JOBS
    limited = {kind for kind, spec in _kinds.items() if spec.limited}
    running = Counter(job.owner_id for job in on_farm if job.kind in limited)
    total = sum(running.values())
    chosen = [job for job in waiting if job.kind not in limited]
    candidates = [job for job in waiting if job.kind in limited]
    while candidates and total < farm_limit:
        eligible = [job for job in candidates if running[job.owner_id] < per_user_limit]
        if not eligible:
            break
        best = min(
            eligible,
            key=lambda job: (
                -job.priority,
                running[job.owner_id],
                job.created_at,
                job.pk,
            ),
        )
        chosen.append(best)
        candidates.remove(best)
        running[best.owner_id] += 1
        total += 1
    return chosen


def _fail_orphans() -> None:
    """Without a broker, jobs run in threads of this process: an active job
    that another (earlier) process was running lost its thread when that
    process ended, and would hold its owner's slots for ever."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return
    for job in Job.objects.filter(
        status__in=Job.ACTIVE_STATUSES, dispatched_at__isnull=False
    ).exclude(params__runner=PROCESS_ID):
        if "runner" in job.params:
            lifecycle.fail(job.pk, "the studio restarted while this job ran")


def _dispatch(job: Job, now: Any) -> bool:
    """Mark ``job`` sent and send its canvas after commit; False when its
    canvas cannot be made (its model was disabled or removed meanwhile): the
    job is failed with the reason rather than blocking every later job."""
    spec = kind_spec(job.kind)
    try:
        with transaction.atomic():
            if not Job.objects.filter(pk=job.pk, dispatched_at=None).update(
                dispatched_at=now
            ):
                return False  # another admission sent it
            canvas = spec.build(job)
    except Exception as exc:
        logger.warning("job %s cannot start", job.pk, exc_info=True)
        reason = lifecycle.describe_error(exc)
        transaction.on_commit(lambda: lifecycle.fail(job.pk, reason))
        return False
    transaction.on_commit(lambda: send_canvas(job.pk, canvas, spec.on_error))
    return True


def admit() -> list[int]:
    """Start the jobs that may start now; their ids."""
    _fail_orphans()
    with transaction.atomic():
        _lock()
        waiting = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(status=Job.Status.QUEUED, dispatched_at=None)
            .order_by("created_at", "pk")
        )
        if not waiting:
            return []
        on_farm = list(
            Job.objects.filter(
                status__in=Job.ACTIVE_STATUSES, dispatched_at__isnull=False
            ).only("owner_id", "kind")
        )
        chosen = _choose(waiting, on_farm)
        now = timezone.now()
        sent = [job for job in chosen if _dispatch(job, now)]
        left = [job.pk for job in waiting if job not in chosen]
        if left:
            Job.objects.filter(pk__in=left, message="").update(
                message="waiting for a free slot on the farm"
            )
    if sent:
        logger.info("admitted jobs %s", [job.pk for job in sent])
    return [job.pk for job in sent]
