"""Progress of a job: one ``ProgressManager`` writes it to the Job row and sends
it to the job's Channels group, throttled, so the page, the API and the
terminal all see the same numbers.

Stages own a slice of the job's 0..1 range (``STAGE_SPANS``) so that a stage
reports its own fraction and the job's progress never runs backwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Literal, NotRequired, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from . import records
from .models import Job, RunStatus, group_name

logger = logging.getLogger(__name__)


# Where each stage of a render sits in the job's progress.
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "queued": (0.0, 0.0),
    "analyze": (0.0, 0.12),
    "character": (0.12, 0.17),
    "plan": (0.17, 0.2),
    "scenes": (0.2, 0.85),
    # Short of 1.0: the job reaches 100% only when it has succeeded.
    "assemble": (0.85, 0.99),
}


class JobStopped(Exception):
    """The job was cancelled or failed while this task worked on it; the task
    stops without a failure of its own."""


MIN_INTERVAL_S = 0.25  # no more than four updates a second per stage


class StagePayload(TypedDict):
    """One stage of a job (a ``JobStage`` row) as the page shows it."""

    name: str
    status: str
    progress: float  # the stage's own fraction, 0..1
    cached: bool
    seconds: float | None


class ProgressPayload(TypedDict):
    """What the job's group receives; ``type`` routes it to the consumer."""

    type: Literal["job.progress"]
    job: int
    status: str
    stage: str
    progress: float
    message: str
    error: str
    # The job's stages in order; absent for a job without stage rows.
    stages: NotRequired[list[StagePayload]]


class ScenePayload(TypedDict):
    """One scene of a render changed state (its thumbnail is ready, it came
    from the cache, it failed); the job page updates that scene's card."""

    type: Literal["job.scene"]
    job: int
    scene: int  # the Scene row's id (its preview is served by id)
    index: int
    status: str
    cached: bool
    has_thumbnail: bool
    seconds: float | None
    worker: str
    queue: str
    error: str


Listener = Callable[[ProgressPayload], None]
_listeners: list[Listener] = []
_listeners_lock = threading.Lock()


def add_listener(listener: Listener) -> None:
    """Receive every payload sent from this process (the terminal progress bar)."""
    with _listeners_lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _listeners_lock:
        if listener in _listeners:
            _listeners.remove(listener)


def _stage_fraction(job: Job, row: dict[str, Any]) -> float:
    """The stage's fraction; for the stage under way, read off the job's own
    progress, because its row is written just after each update is sent."""
    fraction = float(row["progress"])
    span = STAGE_SPANS.get(row["name"])
    if row["status"] == RunStatus.RUNNING and row["name"] == job.stage and span:
        start, end = span
        if end > start:
            fraction = max(fraction, (job.progress - start) / (end - start))
    return round(min(max(fraction, 0.0), 1.0), 4)


def payload_for(job: Job) -> ProgressPayload:
    """The job's state; one query (its stages), since ``publish`` calls this
    inside the job's row lock on every update."""
    payload = ProgressPayload(
        type="job.progress",
        job=job.pk,
        status=job.status,
        stage=job.stage,
        progress=round(job.progress, 4),
        message=job.message,
        error=job.error,
    )
    rows = list(
        job.stages.order_by("position", "id").values(
            "name", "status", "progress", "cached", "seconds"
        )
    )
    if rows:
        payload["stages"] = [
            StagePayload(
                name=row["name"],
                status=row["status"],
                progress=_stage_fraction(job, row),
                cached=row["cached"],
                seconds=row["seconds"],
            )
            for row in rows
        ]
    return payload


def publish(job: Job) -> None:
    """Send the job's current state to its group and to local listeners."""
    payload = payload_for(job)
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(payload)
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(job.pk), payload)
    except Exception:
        # The row already holds the progress and pages poll it; a channel
        # layer outage must not fail the render.
        logger.warning("could not send progress of job %s", job.pk, exc_info=True)


def publish_scene(payload: ScenePayload) -> None:
    """Send a scene's new state to its job's group."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_name(payload["job"]), payload)
    except Exception:
        logger.warning(
            "could not send scene %s of job %s",
            payload["index"],
            payload["job"],
            exc_info=True,
        )


def change_and_publish(
    job_id: int,
    from_statuses: Iterable[str],
    changes: dict[str, Any],
    *,
    also: Callable[[], None] | None = None,
) -> bool:
    """Apply ``changes`` to the job if its status is one of ``from_statuses``;
    True if this call made the change. ``also`` runs after the change and
    before the state is sent (the stages that end with the job), so the
    message shows both.

    The row is locked from the check until the state is sent, so reporters
    running in parallel (scene tasks on several workers) send their states in
    the order they wrote them and a page never sees progress run backwards.
    """
    with transaction.atomic():
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, status__in=list(from_statuses))
            .first()
        )
        if job is None:
            return False
        if "progress" in changes and job.status == changes.get("status", job.status):
            # Within one state the bar only moves forward.
            changes = {**changes, "progress": max(job.progress, changes["progress"])}
        for field, value in changes.items():
            setattr(job, field, value)
        job.save(update_fields=[*changes, "updated_at"])
        if also is not None:
            also()
        publish(job)
    return True


class ProgressManager:
    """Report one stage of a job::

        with ProgressManager(job_id, "scenes") as progress:
            progress.update(0.5, "scene 3 of 6")

    Updates go to the Job row only while the job is running, so a late message
    from a straggling task cannot resurrect a failed or cancelled job.
    """

    def __init__(
        self,
        job_id: int,
        stage: str,
        *,
        span: tuple[float, float] | None = None,
        min_interval: float = MIN_INTERVAL_S,
    ):
        """``span``: the stage's slice of the job's progress; by default the
        render's (``STAGE_SPANS``). A job with one stage passes (0, 1)."""
        if span is None and stage not in STAGE_SPANS:
            raise ValueError(f"unknown stage {stage!r}")
        self.job_id = job_id
        self.stage = stage
        self.start, self.end = span or STAGE_SPANS[stage]
        self.min_interval = min_interval
        self._last_sent = 0.0
        self._last_fraction = -1.0

    def __enter__(self) -> ProgressManager:
        records.start_stage(self.job_id, self.stage)
        self.update(0.0, f"{self.stage} started", force=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.update(1.0, force=True)

    def update(
        self, fraction: float, message: str = "", *, force: bool = False
    ) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if not force and (
            now - self._last_sent < self.min_interval or fraction <= self._last_fraction
        ):
            return
        self._last_sent = now
        self._last_fraction = fraction
        changes: dict[str, Any] = {
            "progress": self.start + (self.end - self.start) * fraction,
            "stage": self.stage,
        }
        if message:  # without one, the last message stays up
            changes["message"] = message[:500]
        if not change_and_publish(self.job_id, [Job.Status.RUNNING], changes):
            raise JobStopped(f"job {self.job_id} is no longer running")
        records.stage_progress(self.job_id, self.stage, fraction, message)
