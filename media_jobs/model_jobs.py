"""Pulling a model into the store as a job, from the admin: followed on the
job page like any job, with the bytes downloaded as its progress.

The task runs on a farm worker and writes to that host's
``STUDIO_MODEL_STORE``: hosts that share the store's volume see the model at
once; a GPU host with a store of its own pulls with ``manage.py models pull``.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from workers.modelstore.store import StoreError

from . import lifecycle, records, scheduler
from .models import Job, ModelSpec
from .orchestration import one_task
from .progress import ProgressManager
from .registry import pull_spec
from .tracking import tracked

PULL_TASK = "media_jobs.pull_model"
PULL_FAILED = "media_jobs.pull_failed"
STAGE = "pull"


class PullRefused(ValueError):
    """This model cannot be pulled; the message says why."""


def register_job_kinds() -> None:
    # A download holds no render slot: it waits on the network, not a GPU.
    scheduler.register_kind(
        Job.Kind.MODEL_PULL, one_task(PULL_TASK, PULL_FAILED), PULL_FAILED,
        limited=False,
    )  # fmt: skip


def start_pull(spec: ModelSpec, user: object) -> Job:
    """A job pulling ``spec``'s files; one already waiting or running for
    the same model is returned instead of a second."""
    if spec.location != ModelSpec.Location.LOCAL:
        raise PullRefused(
            f"{spec.key} has no weights to pull ({spec.get_location_display()})"
        )
    with transaction.atomic():
        ModelSpec.objects.select_for_update().filter(pk=spec.pk).first()
        running = lifecycle.live_jobs(
            Job.objects.filter(kind=Job.Kind.MODEL_PULL, params__model=spec.key)
        )
        if running:
            return running[-1]
        job = Job.objects.create(
            owner=user, kind=Job.Kind.MODEL_PULL, params={"model": spec.key}
        )
        records.create_stages(job, (STAGE,))
        scheduler.submit(job)
    return job


@shared_task(name=PULL_TASK, bind=True)
def pull_model(self, job_id: int) -> None:
    lifecycle.claim(job_id)
    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).first()
    if job is None:
        return
    spec = ModelSpec.objects.get(key=job.params["model"])
    with (
        tracked(self, job_id, STAGE, STAGE, what=f"pulling {spec.key}"),
        ProgressManager(job_id, STAGE, span=(0.0, 1.0)) as progress,
    ):
        fetched = ["nothing"]

        def on_progress(done: int, total: int) -> None:
            if total:
                fetched[0] = f"{done / 2**20:.0f} of {total / 2**20:.0f} MB"
                progress.update(done / total, f"{spec.key}: {fetched[0]}")

        try:
            result = pull_spec(spec, on_progress)
        except StoreError as exc:
            raise PullRefused(f"{spec.key}: {exc}") from exc
        except SoftTimeLimitExceeded as exc:
            if not records.job_is_running(job_id):
                raise  # a cancel (the same signal): tracked() ends it quietly
            # Large models outlast a task's time limit; the download resumes.
            raise PullRefused(
                f"{spec.key}: the pull ran past this worker's time limit of"
                f" {settings.TASK_SOFT_TIME_LIMIT} s after {fetched[0]}; what it"
                " fetched is kept, and pulling again goes on from there"
                f" (python manage.py models pull {spec.key} on the host has no"
                " time limit)"
            ) from exc
    lifecycle.finish_stage(job_id, STAGE, 0.0, f"{len(result.files)} files")
    lifecycle.succeed(
        job_id, f"{spec.key}: {len(result.files)} files, revision {result.revision}"
    )


@shared_task(name=PULL_FAILED)
def pull_failed(
    request, exc, traceback, job_id: int, attempt: int | None = None
) -> None:
    """Error callback: fail the job once, with the reason."""
    lifecycle.fail(job_id, lifecycle.describe_error(exc), attempt)
