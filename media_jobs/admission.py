"""When a job ends or is queued again, the farm may start waiting jobs."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from . import scheduler
from .models import Job
from .signals import job_state_changed

_FREES_OR_WANTS_A_SLOT = {
    Job.Status.SUCCEEDED,
    Job.Status.FAILED,
    Job.Status.CANCELLED,
    Job.Status.QUEUED,
    Job.Status.REVIEW,  # a render held for its owner gives its slot up
}


@receiver(job_state_changed, dispatch_uid="media_jobs.admit_on_change")
def admit_on_change(sender: Any, job_id: int, status: str, **kwargs: Any) -> None:
    if status in _FREES_OR_WANTS_A_SLOT:
        scheduler.admit()
