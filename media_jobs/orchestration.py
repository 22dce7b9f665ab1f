"""Celery canvases for jobs. Stage tasks are named, not imported, so the apps
that own them can depend on media_jobs and not the other way round."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from celery import Task, chain, chord, signature
from celery.canvas import Signature
from celery.utils import uuid
from django.conf import settings
from django.db import transaction

from .lifecycle import describe_error, fail
from .models import Job

logger = logging.getLogger(__name__)


def pipeline(job_id: int, stages: Sequence[str], on_error: str) -> Signature:
    """Stage tasks run one after another, each taking only the job id; any
    failure calls ``on_error(request, exc, traceback, job_id)`` once."""
    steps = [signature(name, args=(job_id,), immutable=True) for name in stages]
    canvas = chain(*steps) if len(steps) > 1 else steps[0]
    canvas.link_error(signature(on_error, args=(job_id,), immutable=False))
    return canvas


def fan_out(
    task: Task, item_task: str, item_ids: Sequence[int], callback: str, job_id: int
):
    """Replace the running stage task by a chord: one ``item_task`` per id in
    parallel, then ``callback(job_id)``. The replaced task's error callback
    moves onto the chord, so a failing item still fails the job once."""
    header = [
        signature(item_task, args=(item_id,), immutable=True).set(task_id=uuid())
        for item_id in item_ids
    ]
    Job.objects.filter(pk=job_id).update(
        task_ids=[item.options["task_id"] for item in header]
    )
    body = signature(callback, args=(job_id,), immutable=True)
    return task.replace(chord(header, body))


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


def dispatch(job: Job, canvas: Signature, on_error: str) -> None:
    """Send the canvas once the job row is committed (a worker must find it).

    Without a broker (the embedded default) the canvas runs in-process: in a
    thread for web requests, so the page returns at once and follows progress.
    """

    def send() -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            if settings.STUDIO_RUN_TASKS_IN_THREAD:
                _run_in_thread(job.pk, canvas, on_error)
            else:
                run_inline(job.pk, canvas, on_error)
        else:
            _send(job.pk, canvas)

    transaction.on_commit(send)


def run_inline(job_id: int, canvas: Signature, on_error: str) -> bool:
    """Run a canvas in this process; True when the job succeeded.

    Eager canvases do not reliably reach their error callbacks, so a failure
    here calls ``on_error`` itself; it fails the job only if nothing did yet.
    """
    try:
        canvas.apply()
    except Exception as exc:
        logger.debug("job %s raised", job_id, exc_info=True)
        signature(on_error, args=(job_id,))(None, exc, None)
        fail(job_id, describe_error(exc))
    job = Job.objects.get(pk=job_id)
    return job.status == Job.Status.SUCCEEDED
