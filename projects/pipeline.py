"""Starting a render: the job row first, then the canvas, sent after commit."""

from __future__ import annotations

from celery.canvas import Signature
from django.db import transaction

from media_jobs.models import Job
from media_jobs.orchestration import dispatch, pipeline, run_inline

from .models import Project

RENDER_STAGES = ("projects.analyze_music", "projects.plan_scenes")
RENDER_ERROR_CALLBACK = "projects.render_failed"


class RenderNotReady(ValueError):
    """The project lacks something a render needs; the message says what."""


def render_canvas(job_id: int) -> Signature:
    return pipeline(job_id, RENDER_STAGES, on_error=RENDER_ERROR_CALLBACK)


def check_ready(project: Project) -> None:
    missing = []
    if not project.images().exists():
        missing.append("at least one photo")
    if project.music() is None:
        missing.append("a song")
    if missing:
        raise RenderNotReady(f"Upload {' and '.join(missing)} before rendering.")


def create_render_job(project: Project, **overrides: object) -> Job:
    """The job row, with the render's parameters frozen at the time of asking."""
    check_ready(project)
    params = {
        "preset": overrides.get("preset") or project.preset,
        "format": overrides.get("format") or project.output_format,
        "duration": float(overrides.get("duration") or project.target_duration),
        "style": overrides.get("style") or project.style,
    }
    return Job.objects.create(
        owner=project.owner, project=project, kind=Job.Kind.RENDER, params=params
    )


def start_render(project: Project, **overrides: object) -> Job:
    """Create the job and send its canvas once the transaction commits."""
    with transaction.atomic():
        job = create_render_job(project, **overrides)
        dispatch(job, render_canvas(job.pk), RENDER_ERROR_CALLBACK)
    return job


def render_now(project: Project, **overrides: object) -> Job:
    """Run a whole render in this process (the ``render`` command)."""
    job = create_render_job(project, **overrides)
    run_inline(job.pk, render_canvas(job.pk), RENDER_ERROR_CALLBACK)
    job.refresh_from_db()
    return job
