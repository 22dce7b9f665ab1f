"""Celery canvases for jobs. Stage tasks are named, not imported, so the apps
that own them can depend on media_jobs and not the other way round."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from celery import Task, chain, chord, signature
from celery.canvas import Signature
from celery.utils import uuid
from django.conf import settings

from . import records
from .lifecycle import describe_error, fail
from .models import Job
from .queues import celery_priority

logger = logging.getLogger(__name__)


# This process, for jobs run in its threads without a broker (the embedded
# default): a later process can tell that their thread is gone.
PROCESS_ID = uuid()


def error_callback(on_error: str, job_id: int, attempt: int | None) -> Signature:
    """``on_error(request, exc, traceback, job_id, attempt)``: the attempt lets
    a late failure of an earlier attempt's canvas leave its retry alone."""
    return signature(on_error, args=(job_id, attempt), immutable=False)


def pipeline(
    job_id: int,
    stages: Sequence[str],
    on_error: str,
    *,
    priority: int | None = None,
    attempt: int | None = None,
) -> Signature:
    """Stage tasks run one after another, each taking only the job id; any
    failure calls ``on_error(request, exc, traceback, job_id, attempt)`` once."""
    steps = [
        signature(name, args=(job_id,), immutable=True, priority=priority)
        for name in stages
    ]
    canvas = chain(*steps) if len(steps) > 1 else steps[0]
    canvas.link_error(error_callback(on_error, job_id, attempt))
    return canvas


def one_task(task: str, on_error: str) -> Callable[[Job], Signature]:
    """The canvas builder (``scheduler.register_kind``) of a job that is one
    task taking the job's id, at the job's priority."""

    def build(job: Job) -> Signature:
        return pipeline(
            job.pk,
            [task],
            on_error=on_error,
            priority=celery_priority(job.priority),
            attempt=job.attempts,
        )

    return build


@dataclass(frozen=True)
class Item:
    """One task of a fan-out: its id argument, where it goes, and how its
    ``TaskRun`` record is keyed."""

    item_id: int
    queue: str | None = None
    key: str = ""
    scene_index: int | None = None
    model_key: str = ""


def scatter(
    item_task: str,
    items: Sequence[Item],
    callback: str,
    job_id: int,
    *,
    priority: int | None = None,
    stage: str = "",
) -> Signature:
    """A chord: one ``item_task(item_id)`` per item in parallel, each on its
    own queue, then ``callback(job_id)``. The ids of the item tasks are
    stored on the job, so a cancel can revoke them, and each gets a queued
    ``TaskRun`` record."""
    header = []
    for item in items:
        options: dict[str, object] = {"task_id": uuid()}
        if item.queue:
            options["queue"] = item.queue
        if priority is not None:
            options["priority"] = priority
        header.append(
            signature(item_task, args=(item.item_id,), immutable=True).set(**options)
        )
    Job.objects.filter(pk=job_id).update(
        task_ids=[item.options["task_id"] for item in header]
    )
    records.tasks_queued(
        job_id,
        [
            {
                "key": item.key or f"{item_task}-{item.item_id}",
                "stage": stage,
                "scene_index": item.scene_index,
                "task_name": item_task,
                "task_id": sig.options["task_id"],
                "queue": item.queue or "",
                "model_key": item.model_key,
            }
            for item, sig in zip(items, header, strict=True)
        ],
    )
    body = signature(callback, args=(job_id,), immutable=True, priority=priority)
    return chord(header, body)


def fan_out(task: Task, canvas: Signature):
    """Replace the running stage task by ``canvas`` (a ``scatter`` chord). The
    replaced task's error callback moves onto it, so a failing item still
    fails the job once."""
    return task.replace(canvas)


def _send(job_id: int, canvas: Signature) -> None:
    result = canvas.apply_async()
    Job.objects.filter(pk=job_id).update(task_id=result.id or "")


def _run_in_thread(job_id: int, canvas: Signature, on_error: str) -> None:
    def target() -> None:
        from django.db import connection

        try:
            run_inline(job_id, canvas, on_error)
        finally:
            connection.close()

    threading.Thread(target=target, name=f"job-{job_id}", daemon=True).start()


def send_canvas(job_id: int, canvas: Signature, on_error: str) -> None:
    """Send a job's canvas to the farm (call after the job row is committed:
    a worker must find it).

    Without a broker (the embedded default) the canvas runs in-process: in a
    thread for web requests, so the page returns at once and follows progress.
    """
    if settings.CELERY_TASK_ALWAYS_EAGER:
        job = Job.objects.filter(pk=job_id).first()
        if job is not None:  # whose thread runs it (scheduler._fail_orphans)
            job.params = {**job.params, "runner": PROCESS_ID}
            job.save(update_fields=["params"])
        if settings.STUDIO_RUN_TASKS_IN_THREAD:
            _run_in_thread(job_id, canvas, on_error)
        else:
            run_inline(job_id, canvas, on_error)
    else:
        _send(job_id, canvas)


def run_inline(job_id: int, canvas: Signature, on_error: str) -> bool:
    """Run a canvas in this process; True when the job succeeded.

    Eager canvases do not reliably reach their error callbacks, so a failure
    here calls ``on_error`` itself; it fails the job only if nothing did yet.
    """
    try:
        canvas.apply()
    except Exception as exc:
        logger.debug("job %s raised", job_id, exc_info=True)
        attempt = Job.objects.filter(pk=job_id).values_list("attempts", flat=True)
        error_callback(on_error, job_id, attempt.first())(None, exc, None)
        fail(job_id, describe_error(exc))
    job = Job.objects.get(pk=job_id)
    return job.status == Job.Status.SUCCEEDED
