"""Records of a job's stages and tasks: what ran where, how long, how it ended.

Every stage task and every scene task writes one ``TaskRun`` (one row per
task, updated by each delivery) and moves its ``JobStage``; the job page, the
API and the metrics read them.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from .models import Job, JobStage, RunStatus, TaskRun

# The stages of a render, in order; a job of another kind lists its own.
RENDER_STAGES = ("analyze", "character", "plan", "scenes", "assemble")


class TooManyDeliveries(RuntimeError):
    """A task was started more often than ``STUDIO_MAX_DELIVERIES``: each
    start lost its worker, so it is failed rather than crash another."""


def create_stages(job: Job, names: tuple[str, ...] = RENDER_STAGES) -> None:
    JobStage.objects.bulk_create(
        [JobStage(job=job, name=name, position=i) for i, name in enumerate(names)],
        ignore_conflicts=True,
    )


def start_stage(job_id: int, name: str) -> None:
    JobStage.objects.filter(job_id=job_id, name=name, started_at=None).update(
        started_at=timezone.now()
    )
    JobStage.objects.filter(job_id=job_id, name=name, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING
    )


def finish_stage(
    job_id: int, name: str, seconds: float, *, cached: bool = False, message: str = ""
) -> bool:
    """Mark the stage done; True only for the first caller."""
    changes: dict[str, Any] = {
        "status": RunStatus.DONE,
        "progress": 1.0,
        "finished_at": timezone.now(),
        "seconds": round(seconds, 3),
        "cached": cached,
    }
    if message:
        changes["message"] = message[:500]
    updated = (
        JobStage.objects.filter(job_id=job_id, name=name)
        .exclude(status=RunStatus.DONE)
        .update(**changes)
    )
    if updated == 0 and not JobStage.objects.filter(job_id=job_id, name=name).exists():
        JobStage.objects.create(job_id=job_id, name=name, **changes)
        return True
    return updated == 1


def stage_progress(job_id: int, name: str, fraction: float, message: str) -> None:
    changes: dict[str, Any] = {"progress": fraction}
    if message:
        changes["message"] = message[:500]
    JobStage.objects.filter(job_id=job_id, name=name, status=RunStatus.RUNNING).update(
        **changes
    )


def end_job_stages(job_id: int, status: str) -> None:
    """A failed or cancelled job: its unfinished stages and tasks end too."""
    now = timezone.now()
    JobStage.objects.filter(
        job_id=job_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    ).update(status=status, finished_at=now)
    TaskRun.objects.filter(
        job_id=job_id, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    ).update(status=status, finished_at=now, updated_at=now)


def reopen_stages(job_id: int) -> None:
    """A retried job: the stages it did not finish are to do again."""
    JobStage.objects.filter(job_id=job_id).exclude(status=RunStatus.DONE).update(
        status=RunStatus.PENDING, progress=0.0, finished_at=None, message=""
    )


def _queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or info.get("queue") or "")


def task_started(
    job_id: int,
    key: str,
    *,
    stage: str,
    request: Any = None,
    task_name: str = "",
    scene_index: int | None = None,
    model_key: str = "",
) -> TaskRun:
    """Record a delivery of a task on this worker; raises ``TooManyDeliveries``
    when the task keeps losing its workers."""
    defaults = {"stage": stage, "scene_index": scene_index, "task_name": task_name}
    with transaction.atomic():
        run, _ = TaskRun.objects.select_for_update().get_or_create(
            job_id=job_id, key=key, defaults=defaults
        )
        run.deliveries = F("deliveries") + 1
        run.status = RunStatus.RUNNING
        run.task_id = str(getattr(request, "id", "") or "")
        run.task_name = task_name or run.task_name
        run.queue = _queue_of(request) or run.queue
        run.worker = str(getattr(request, "hostname", "") or "") or "in-process"
        run.pid = os.getpid()
        run.model_key = model_key
        run.started_at = timezone.now()
        run.updated_at = run.started_at
        run.finished_at = None
        run.error = ""
        run.save()
        run.refresh_from_db(fields=["deliveries"])
    if run.deliveries > settings.STUDIO_MAX_DELIVERIES:
        raise TooManyDeliveries(
            f"{key} lost its worker {run.deliveries - 1} times (a crash or running"
            " out of memory) and was given up"
        )
    return run


def job_is_running(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).exists()


def task_progress(job_id: int, key: str, fraction: float) -> bool:
    """Record a running task's progress; False once its job is no longer
    running (cancelled or failed), which tells the task to stop."""
    if not job_is_running(job_id):
        return False
    TaskRun.objects.filter(job_id=job_id, key=key).update(
        progress=min(max(fraction, 0.0), 1.0), updated_at=timezone.now()
    )
    return True


def mark_stage_cached(job_id: int, name: str) -> None:
    JobStage.objects.filter(job_id=job_id, name=name).update(cached=True)


def task_finished(
    run: TaskRun,
    status: str,
    *,
    cached: bool = False,
    error: str = "",
) -> None:
    now = timezone.now()
    seconds = (now - run.started_at).total_seconds() if run.started_at else None
    TaskRun.objects.filter(pk=run.pk).update(
        status=status,
        cached=cached,
        error=error[:4000],
        finished_at=now,
        updated_at=now,
        seconds=seconds,
        progress=1.0 if status == RunStatus.DONE else F("progress"),
    )


def tasks_queued(job_id: int, entries: list[dict[str, Any]]) -> None:
    """Rows for tasks just sent (so the page lists scenes before they start).

    A task sent again (a retry, the reconciler's resend) keeps its row: one
    still running or done is left as it is, and only a retried task that
    failed or was cancelled starts its delivery count afresh."""
    now = timezone.now()
    for entry in entries:
        fields = {
            "stage": entry["stage"],
            "scene_index": entry.get("scene_index"),
            "task_name": entry["task_name"],
            "task_id": entry.get("task_id", ""),
            "queue": entry.get("queue", ""),
            "model_key": entry.get("model_key", ""),
            "status": RunStatus.PENDING,
            "queued_at": now,
            "updated_at": now,
        }
        run, created = TaskRun.objects.get_or_create(
            job_id=job_id, key=entry["key"], defaults=fields
        )
        if created or run.status in (RunStatus.RUNNING, RunStatus.DONE):
            continue
        if run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            fields.update(deliveries=0, error="")
        TaskRun.objects.filter(pk=run.pk).update(**fields)


def last_activity(job: Job) -> tuple[Any, bool]:
    """When the job or any of its tasks last moved, and whether a task of it
    is still waiting in a queue."""
    runs = TaskRun.objects.filter(job=job)
    latest = runs.aggregate(latest=Max("updated_at"))["latest"]
    waiting = runs.filter(status=RunStatus.PENDING).exists()
    moved = max(job.updated_at, latest) if latest else job.updated_at
    return moved, waiting
