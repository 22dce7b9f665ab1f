"""Celery tasks of the characters app: checking reference photos."""

from __future__ import annotations

import time

from celery import shared_task

from media_jobs import lifecycle
from media_jobs.models import Job
from media_jobs.progress import ProgressManager
from media_jobs.tracking import tracked

from .jobs import STAGE
from .models import Character, ReferenceImage
from .registration import register_pending


@shared_task(name="characters.register", bind=True)
def register(self, job_id: int) -> int | None:
    """Check a character's waiting reference photos and make its identity."""
    lifecycle.claim(job_id)
    job = Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).first()
    if job is None:
        return None  # cancelled meanwhile
    character = Character.objects.filter(pk=job.params.get("character")).first()
    if character is None:
        lifecycle.succeed(job_id, "the character was deleted")
        return None
    started = time.monotonic()
    with (
        tracked(self, job_id, STAGE, STAGE, what="checking the photos"),
        ProgressManager(job_id, STAGE, span=(0.0, 0.99)) as progress,
    ):
        character = register_pending(character, progress=progress.update)
    if character is None:
        lifecycle.succeed(job_id, "the character was deleted")
        return None
    refs = character.references.all()
    accepted = refs.filter(status=ReferenceImage.Status.ACCEPTED).count()
    lifecycle.finish_stage(job_id, STAGE, time.monotonic() - started)
    lifecycle.succeed(job_id, f"{accepted} of {refs.count()} photos accepted")
    return character.pk


@shared_task(name="characters.registration_failed")
def registration_failed(
    request, exc, traceback, job_id: int, attempt: int | None = None
) -> None:
    """Error callback: fail the job once, saying why; the photos it did not
    get to stay waiting, to be checked by the next registration."""
    lifecycle.fail(job_id, lifecycle.describe_error(exc), attempt)
