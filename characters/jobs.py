"""Registration jobs: a character's new reference photos are checked by a
task on the farm (``characters.register``), followed like any job."""

from __future__ import annotations

from django.db import transaction

from media_jobs import records, scheduler
from media_jobs.models import Job
from media_jobs.orchestration import one_task

from .models import Character

REGISTER_TASK = "characters.register"
REGISTRATION_FAILED = "characters.registration_failed"
STAGE = "faces"


def register_job_kinds() -> None:
    # Seconds of work a page is waiting for, like a song's analysis: no slot.
    scheduler.register_kind(
        Job.Kind.CHARACTER,
        one_task(REGISTER_TASK, REGISTRATION_FAILED),
        REGISTRATION_FAILED,
        limited=False,
    )


def registrations(character: Character):
    return Job.objects.filter(
        kind=Job.Kind.CHARACTER, params__character=character.pk
    ).order_by("-created_at", "-id")


def start_registration(character: Character) -> Job:
    """A job that checks the character's waiting references; one still
    queued is reused (it will see every reference added before it starts)."""
    with transaction.atomic():
        Character.objects.select_for_update().filter(pk=character.pk).first()
        waiting = registrations(character).filter(status=Job.Status.QUEUED).first()
        if waiting is not None:
            return waiting
        job = Job.objects.create(
            owner=character.owner,
            kind=Job.Kind.CHARACTER,
            params={"character": character.pk},
            priority=Job.Priority.HIGH,
        )
        records.create_stages(job, (STAGE,))
        scheduler.submit(job)
    return job
