"""What a render's end means for its project: one place for every path that
fails or cancels a job (the canvas's error callback, a cancel by its owner,
the reconciler giving up on a lost task)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from media_jobs import control
from media_jobs.models import Job, RunStatus, TaskRun
from media_jobs.signals import job_state_changed

from .models import Project, Render, Scene

_ENDED = {Job.Status.FAILED, Job.Status.CANCELLED}


@receiver(job_state_changed, dispatch_uid="projects.end_render_on_change")
def end_render_on_change(sender: Any, job_id: int, status: str, **kwargs: Any) -> None:
    """A render job that failed or was cancelled: its unfinished scenes are
    cancelled (a failed scene stays failed), its project shows the outcome,
    and its tasks still queued or running are revoked."""
    if status not in _ENDED:
        return
    with transaction.atomic():
        # Sent after the commit: the job may have been retried since.
        job = (
            Job.objects.select_for_update()
            .filter(pk=job_id, kind=Job.Kind.RENDER, status=status)
            .first()
        )
        if job is None:
            return
        Scene.objects.filter(
            job_id=job_id, status__in=[Scene.Status.PENDING, Scene.Status.RUNNING]
        ).update(status=Scene.Status.CANCELLED)
        _settle_project(job, status)
        # The job's end already closed its unfinished task records (failed or
        # cancelled), so every run but a finished one may still be out there;
        # revoking a task that has ended does nothing.
        run_ids = TaskRun.objects.filter(job_id=job_id).exclude(status=RunStatus.DONE)
        ids = [
            *run_ids.values_list("task_id", flat=True),
            job.task_id,
            *(job.task_ids or []),
        ]
    outstanding = list(dict.fromkeys(i for i in ids if i))
    if outstanding:
        control._revoke(outstanding)


def _settle_project(job: Job, status: str) -> None:
    """Failed: the project says so. Cancelled: back to what it was before
    this render (rendered if an earlier render exists, else a draft), so the
    user can render again. A project with another render under way stays
    rendering."""
    if job.project_id is None:
        return
    if (
        Job.objects.filter(
            project_id=job.project_id,
            kind=Job.Kind.RENDER,
            status__in=Job.ACTIVE_STATUSES,
        )
        .exclude(pk=job.pk)
        .exists()
    ):
        return
    if status == Job.Status.FAILED:
        new = Project.Status.FAILED
    elif Render.objects.filter(project_id=job.project_id).exists():
        new = Project.Status.RENDERED
    else:
        new = Project.Status.DRAFT
    Project.objects.filter(pk=job.project_id).update(status=new)
