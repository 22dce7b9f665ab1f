"""``tracked``: how a task of a job records each of its deliveries in its
``TaskRun`` (queue, worker, deliveries, time, how it ended) and ends the
record however the task ends. The job page, the API, the metrics and the
delivery cap (``STUDIO_MAX_DELIVERIES``) read these records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.conf import settings

from workers.scenes import SceneStopped

from . import lifecycle, records
from .models import RunStatus
from .progress import JobStopped


class TimeLimitReached(ValueError):
    """A task ran past this worker's soft time limit; the message says which."""


def time_limit_error(what: str) -> str:
    return (
        f"{what} ran past its time limit of {settings.TASK_SOFT_TIME_LIMIT} s"
        " and was stopped"
    )


@contextmanager
def tracked(
    task: Any,
    job_id: int,
    key: str,
    stage: str,
    *,
    what: str,
    scene_index: int | None = None,
    model_key: str = "",
) -> Iterator[dict[str, Any]]:
    """Record this delivery of a task in its ``TaskRun`` and end the record
    however the task ends. The body may set ``outcome["cached"]``.

    A job cancelled or failed meanwhile ends the task quietly (``Ignore``);
    the soft time limit becomes a failure that names ``what``; anything else
    is recorded and re-raised for the job's error callback.
    """
    run = records.task_started(
        job_id,
        key,
        stage=stage,
        request=task.request,
        task_name=task.name,
        scene_index=scene_index,
        model_key=model_key,
    )
    outcome: dict[str, Any] = {"cached": False}
    try:
        yield outcome
    except Ignore:
        records.task_finished(run, RunStatus.DONE)
        raise
    except (JobStopped, SceneStopped, SoftTimeLimitExceeded) as exc:
        if not records.job_is_running(
            job_id
        ):  # cancelled (SIGUSR1 from the revoke) or failed
            records.task_finished(run, RunStatus.CANCELLED)
            raise Ignore() from exc
        error = time_limit_error(what)
        records.task_finished(run, RunStatus.FAILED, error=error)
        raise TimeLimitReached(error) from exc
    except BaseException as exc:
        records.task_finished(
            run, RunStatus.FAILED, error=lifecycle.describe_error(exc)
        )
        raise
    records.task_finished(run, RunStatus.DONE, cached=outcome["cached"])
