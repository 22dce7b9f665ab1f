"""Starting a render: the job row first, then the canvas, sent after commit."""

from __future__ import annotations

from celery.canvas import Signature
from django.db import transaction

from media_jobs import lifecycle
from media_jobs.models import Job
from media_jobs.orchestration import dispatch, pipeline, run_inline

from .models import Asset, Project

RENDER_STAGES = ("projects.analyze_music", "projects.plan_scenes")
RENDER_ERROR_CALLBACK = "projects.render_failed"


class RenderNotReady(ValueError):
    """The project lacks something a render needs; the message says what."""


class RenderInProgress(ValueError):
    """The project already has a render queued or running (``job``)."""

    def __init__(self, job: Job):
        super().__init__(f"Render #{job.pk} of this project is still {job.status}.")
        self.job = job


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


def _active_render(project: Project) -> Job | None:
    renders = lifecycle.live_jobs(project.jobs.filter(kind=Job.Kind.RENDER))
    return renders[-1] if renders else None


def create_render_job(project: Project, **overrides: object) -> Job:
    """The job row, with the render's inputs frozen at the time of asking: a
    song uploaded or removed meanwhile does not change this render."""
    check_ready(project)
    music = project.music()
    assert music is not None  # check_ready
    params = {
        "preset": overrides.get("preset") or project.preset,
        "format": overrides.get("format") or project.output_format,
        "duration": float(overrides.get("duration") or project.target_duration),  # type: ignore[arg-type]
        "style": overrides.get("style") or project.style,
        "music": music.pk,
    }
    return Job.objects.create(
        owner=project.owner, project=project, kind=Job.Kind.RENDER, params=params
    )


def start_render(project: Project, **overrides: object) -> Job:
    """Create the job and send its canvas once the transaction commits.

    The project row is locked while checking for an active render, so two
    clicks at once start one render, not two.
    """
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        active = _active_render(project)
        if active is not None:
            raise RenderInProgress(active)
        job = create_render_job(project, **overrides)
        dispatch(job, render_canvas(job.pk), RENDER_ERROR_CALLBACK)
    return job


def start_analysis(song: Asset) -> Job:
    """An analysis job for a song just uploaded (no-op work when the same
    song was analysed before: the job finishes at once)."""
    with transaction.atomic():
        job = Job.objects.create(
            owner=song.project.owner,
            project=song.project,
            kind=Job.Kind.ANALYZE,
            params={"asset": song.pk},
        )
        dispatch(
            job,
            pipeline(job.pk, ["projects.analyze_song"], on_error="projects.job_failed"),
            "projects.job_failed",
        )
    return job


def render_now(project: Project, **overrides: object) -> Job:
    """Run a whole render in this process (the ``render`` command)."""
    job = create_render_job(project, **overrides)
    run_inline(job.pk, render_canvas(job.pk), RENDER_ERROR_CALLBACK)
    job.refresh_from_db()
    return job
