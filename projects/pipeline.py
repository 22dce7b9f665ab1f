"""Starting renders: the job row first, then the scheduler sends its canvas.

A render's canvas is built from where the job stands (``render_canvas``), so
the same function starts a new render, resumes one the reconciler found
stuck, and retries a failed one without redoing its finished scenes.
"""

from __future__ import annotations

import random
from typing import Any

from celery import signature
from celery.canvas import Signature
from django.db import transaction

from media_jobs import lifecycle, records, scheduler
from media_jobs.models import Batch, Job
from media_jobs.orchestration import (
    Item,
    error_callback,
    one_task,
    pipeline,
    run_inline,
    scatter,
)
from media_jobs.queues import CPU_QUEUE, celery_priority
from workers.assembly.motion import MOVES

from . import storyboards
from .casting import cast_for_photo
from .models import Asset, Project, Scene, Storyboard
from .scene_engines import model_spec, queue_for_model
from .styles import UnknownStyle, get_style

RENDER_STAGE_TASKS = (
    ("analyze", "projects.analyze_music"),
    ("character", "projects.find_character"),
    ("plan", "projects.plan_scenes"),
)
RENDER_ERROR_CALLBACK = "projects.render_failed"
ANALYSIS_ERROR_CALLBACK = "projects.job_failed"
SCENE_TASK = "projects.render_scene"
CAST_TASK = "projects.cast_project"
ANALYSIS_TASK = "projects.analyze_song"
ASSEMBLE_TASK = "projects.assemble_render"


class RenderNotReady(ValueError):
    """The project lacks something a render needs; the message says what."""


class RenderInProgress(ValueError):
    """The same render of this project is already queued, running or held
    for a review (``job``)."""

    def __init__(self, job: Job):
        state = job.get_status_display().lower()
        what = "Render" if job.kind == Job.Kind.RENDER else "Storyboard planning"
        super().__init__(f"{what} #{job.pk} of this project is still {state}.")
        self.job = job


def scene_items(scenes: list[Scene]) -> list[Item]:
    queues = {key: queue_for_model(key) for key in {scene.model for scene in scenes}}
    return [
        Item(
            scene.pk,
            queue=queues[scene.model],
            key=f"scene-{scene.index}",
            scene_index=scene.index,
            model_key=scene.model,
        )
        for scene in scenes
    ]


def scenes_canvas(job: Job, scenes: list[Scene]) -> Signature:
    """The scenes still to make, in parallel on their queues, then assembly."""
    priority = celery_priority(job.priority)
    if not scenes:
        return signature(
            ASSEMBLE_TASK, args=(job.pk,), immutable=True, priority=priority
        )
    return scatter(
        SCENE_TASK,
        scene_items(scenes),
        ASSEMBLE_TASK,
        job.pk,
        priority=priority,
        stage="scenes",
    )


def _stage_runs_queued(job: Job, stages: list[tuple[str, str]]) -> None:
    """Records of stage tasks sent, so a job whose next stage waits in a busy
    queue is seen to be waiting, not stuck."""
    records.tasks_queued(
        job.pk,
        [
            {"key": stage, "stage": stage, "task_name": task, "queue": CPU_QUEUE}
            for stage, task in stages
        ],
    )


def render_canvas(job: Job) -> Signature:
    """The canvas of what ``job`` has left to do."""
    finished = job.params.get("stages_finished", [])
    # Stages run in order, so what is left starts after the last one done (a
    # job planned before a stage was added skips it).
    done = [i for i, (st, _) in enumerate(RENDER_STAGE_TASKS) if st in finished]
    stages = list(RENDER_STAGE_TASKS[done[-1] + 1 :] if done else RENDER_STAGE_TASKS)
    if stages:
        _stage_runs_queued(job, stages[:1])
        return pipeline(
            job.pk,
            [task for _, task in stages],
            on_error=RENDER_ERROR_CALLBACK,
            priority=celery_priority(job.priority),
            attempt=job.attempts,
        )
    scenes = Scene.objects.filter(job=job).exclude(status=Scene.Status.DONE)
    scenes.update(status=Scene.Status.PENDING, error="")
    canvas = scenes_canvas(job, list(scenes.order_by("index")))
    canvas.link_error(error_callback(RENDER_ERROR_CALLBACK, job.pk, job.attempts))
    return canvas


def register_job_kinds() -> None:
    scheduler.register_kind(Job.Kind.RENDER, render_canvas, RENDER_ERROR_CALLBACK)
    # Planning a storyboard runs the render's first stages, then stops.
    scheduler.register_kind(
        Job.Kind.STORYBOARD, render_canvas, ANALYSIS_ERROR_CALLBACK, limited=False
    )
    # A song's analysis, like finding the character in the photos, is
    # seconds of work a page is waiting for: no slot.
    for kind, task in ((Job.Kind.ANALYZE, ANALYSIS_TASK), (Job.Kind.CAST, CAST_TASK)):
        scheduler.register_kind(
            kind,
            one_task(task, ANALYSIS_ERROR_CALLBACK),
            ANALYSIS_ERROR_CALLBACK,
            limited=False,
        )


def check_ready(project: Project) -> None:
    missing = []
    if not project.images().exists():
        missing.append("at least one photo")
    if project.music() is None:
        missing.append("a song")
    if missing:
        raise RenderNotReady(f"Upload {' and '.join(missing)} before rendering.")


def render_params(project: Project, overrides: dict[str, Any]) -> dict[str, Any]:
    """The render's inputs, frozen at the time of asking: a song uploaded or
    removed meanwhile does not change this render."""
    music = project.music()
    assert music is not None  # check_ready
    # No model asked for: the planner chooses among those installed and
    # served (``storyboards.available_models``).
    model = overrides.get("model") or ""
    if model:
        try:
            model_spec(model)
        except ValueError as exc:
            raise RenderNotReady(str(exc)) from exc
    style = overrides.get("style") or project.style
    try:
        get_style(style)
    except UnknownStyle as exc:
        raise RenderNotReady(str(exc)) from exc
    policy = overrides.get("review_policy") or project.review_policy
    if policy not in Project.ReviewPolicy.values:
        raise RenderNotReady(
            f"unknown review policy {policy!r}; choose one of:"
            f" {', '.join(Project.ReviewPolicy.values)}"
        )
    params = {
        "preset": overrides.get("preset") or project.preset,
        "format": overrides.get("format") or project.output_format,
        "duration": float(overrides.get("duration") or project.target_duration),
        "style": style,
        "model": model,
        "music": music.pk,
        "review_policy": policy,
    }
    board = Storyboard.objects.filter(project=project).first()
    if project.mode == Project.Mode.ADVANCED and board is not None:
        # The edited storyboard's render settings, unless this render
        # asks otherwise.
        settings = storyboards.render_settings(board)
        params.update({k: v for k, v in settings.items() if k not in overrides})
        if "preset" in overrides:
            params.pop("width"), params.pop("height"), params.pop("fps")
    # Planning choices a caller may fix: the storyboard's seed, quality or
    # speed first, and a frame size or rate other than the preset's.
    for key in ("seed", "preference", "width", "height", "fps"):
        if overrides.get(key):
            params[key] = overrides[key]
    return params


def _same_render_running(project: Project, params: dict[str, Any]) -> Job | None:
    renders = [
        *lifecycle.live_jobs(project.jobs.filter(kind=Job.Kind.RENDER)),
        *project.jobs.filter(kind=Job.Kind.RENDER, status=Job.Status.REVIEW),
    ]
    for job in reversed(renders):
        if all(job.params.get(k) == v for k, v in params.items()):
            return job
    return None


class PriorityNotAllowed(RenderNotReady):
    """Urgent work jumps every queue of the farm: staff decide it."""


def check_priority(project: Project, priority: int) -> None:
    if priority > Job.Priority.HIGH and not project.owner.is_staff:
        raise PriorityNotAllowed(
            "urgent priority is for staff; ask an administrator, or use high"
        )


def create_render_job(
    project: Project,
    *,
    priority: int = Job.Priority.NORMAL,
    batch: Batch | None = None,
    **overrides: Any,
) -> Job:
    check_ready(project)
    check_priority(project, priority)
    job = Job.objects.create(
        owner=project.owner,
        project=project,
        kind=Job.Kind.RENDER,
        params=render_params(project, overrides),
        priority=priority,
        batch=batch,
    )
    records.create_stages(job)
    return job


def start_render(
    project: Project,
    *,
    priority: int = Job.Priority.NORMAL,
    batch: Batch | None = None,
    allow_duplicate: bool = False,
    **overrides: Any,
) -> Job:
    """Create the job and let the scheduler send it once the transaction commits.

    The project row is locked while looking for the same render already on
    its way, so two clicks start one render, not two; renders that differ
    (another preset, format or model) may run side by side.
    """
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        check_ready(project)
        if not allow_duplicate:
            active = _same_render_running(project, render_params(project, overrides))
            if active is not None:
                raise RenderInProgress(active)
        job = create_render_job(project, priority=priority, batch=batch, **overrides)
        scheduler.submit(job)
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
            priority=Job.Priority.HIGH,
        )
        records.create_stages(job, ("analyze",))
        scheduler.submit(job)
    return job


def start_casting(project: Project) -> Job | None:
    """Quick mode, as photos arrive: a job that finds (or keeps learning)
    the project's character in its photos, so the project shows who it is
    before anything renders. None when the project has a character chosen
    by hand, Quick mode is off, or such a job is already waiting."""
    if not project.auto_character:
        return None
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        project.refresh_from_db(fields=["character", "auto_character"])
        chosen = project.character
        if chosen is not None and not chosen.auto_created:
            return None
        waiting = project.jobs.filter(kind=Job.Kind.CAST, status=Job.Status.QUEUED)
        if waiting.exists():
            return None
        job = Job.objects.create(
            owner=project.owner,
            project=project,
            kind=Job.Kind.CAST,
            params={"project": project.pk},
            priority=Job.Priority.HIGH,
        )
        records.create_stages(job, ("character",))
        scheduler.submit(job)
    return job


def start_storyboard(project: Project, **overrides: Any) -> Job:
    """A job that plans the project's storyboard (analysis, character and
    plan, as a render starts) and stops there: Advanced mode's first step.
    ``overrides`` are render settings (style, duration, preset, width,
    height, fps, format, model, seed, preference)."""
    check_ready(project)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        planning = lifecycle.live_jobs(project.jobs.filter(kind=Job.Kind.STORYBOARD))
        if planning:
            raise RenderInProgress(planning[-1])
        params = render_params(project, overrides)
        job = Job.objects.create(
            owner=project.owner,
            project=project,
            kind=Job.Kind.STORYBOARD,
            params=params,
            priority=Job.Priority.HIGH,
        )
        records.create_stages(job, tuple(stage for stage, _ in RENDER_STAGE_TASKS))
        scheduler.submit(job)
    return job


def plan_now(project: Project, **overrides: Any) -> Job:
    """Plan the storyboard in this process (tests, commands)."""
    check_ready(project)
    params = render_params(project, overrides)
    job = Job.objects.create(
        owner=project.owner, project=project, kind=Job.Kind.STORYBOARD, params=params
    )
    records.create_stages(job, tuple(stage for stage, _ in RENDER_STAGE_TASKS))
    run_inline(job.pk, render_canvas(job), ANALYSIS_ERROR_CALLBACK)
    job.refresh_from_db()
    return job


def render_now(project: Project, **overrides: Any) -> Job:
    """Run a whole render in this process (the ``render`` command)."""
    job = create_render_job(project, **overrides)
    run_inline(job.pk, render_canvas(job), RENDER_ERROR_CALLBACK)
    job.refresh_from_db()
    return job


class SceneNotFound(LookupError):
    pass


def _kept(scene: Scene) -> dict[str, Any]:
    """A scene a new render takes over unchanged, with its verdict: it keeps
    it while its output is the same (``scene_making.make_checked``). One
    already made again elsewhere is, as made here, still the flagged one."""
    review = (
        Scene.Review.FLAGGED if scene.review == Scene.Review.REDONE else (scene.review)
    )
    return {
        "focus_x": scene.focus_x,
        "focus_y": scene.focus_y,
        "character_id": scene.character_id,
        "fingerprint": scene.fingerprint,
        "review": review,
        "consistency": scene.consistency,
        "gate": scene.gate,
        "tries": scene.tries,
    }


def _remade(scene: Scene, job: Job, image: Asset | None) -> dict[str, Any]:
    """The scene to make again: its photo's character and focus (a new
    photo's are looked at by the scene's task), and no verdict yet."""
    if image is None:
        return {
            "focus_x": scene.focus_x,
            "focus_y": scene.focus_y,
            "character_id": scene.character_id,
        }
    character_id, focus = cast_for_photo(job, image, look=False)
    return {"focus_x": focus[0], "focus_y": focus[1], "character_id": character_id}


def rerender_scene(
    job: Job,
    index: int,
    *,
    image: Asset | None = None,
    move: str | None = None,
    seed: int | None = None,
) -> Job:
    """A new render that takes ``job``'s plan, makes scene ``index`` again
    (with a new seed, and a new photo or move when given) and reuses every
    other scene from the cache; ``job`` and its video stay as they are."""
    if job.kind != Job.Kind.RENDER or job.status != Job.Status.SUCCEEDED:
        raise RenderNotReady("only a finished render can have a scene made again")
    old_scenes = list(Scene.objects.filter(job=job).order_by("index"))
    if not any(scene.index == index for scene in old_scenes):
        raise SceneNotFound(f"render #{job.pk} has no scene {index}")
    if image is not None and (
        image.project_id != job.project_id or image.kind != Asset.Kind.IMAGE
    ):
        raise RenderNotReady("the new photo must be a photo of the same project")
    if move is not None and move not in MOVES:
        raise RenderNotReady(
            f"unknown move {move!r}; choose one of: {', '.join(MOVES)}"
        )
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=job.project_id).first()
        done = list(RENDER_STAGE_TASKS)
        params = {
            **{k: v for k, v in job.params.items() if k not in ("resumes",)},
            "stages_finished": [stage for stage, _ in done],
            "timings": {},
            "rerender_of": {"job": job.pk, "scene": index},
        }
        child = Job.objects.create(
            owner=job.owner,
            project=job.project,
            kind=Job.Kind.RENDER,
            params=params,
            priority=job.priority,
            parent=job,
        )
        records.create_stages(child)
        for stage, _ in done:
            records.finish_stage(child.pk, stage, 0.0, cached=True)
        Scene.objects.bulk_create(
            Scene(
                project=scene.project,
                job=child,
                index=scene.index,
                start=scene.start,
                end=scene.end,
                start_frame=scene.start_frame,
                end_frame=scene.end_frame,
                image=image if scene.index == index and image else scene.image,
                move=move if scene.index == index and move else scene.move,
                model=scene.model,
                seed=(
                    (seed if seed is not None else random.getrandbits(31))
                    if scene.index == index
                    else scene.seed
                ),
                transition=scene.transition,
                transition_frames=scene.transition_frames,
                prompt=scene.prompt,
                negative_prompt=scene.negative_prompt,
                motion=scene.motion,
                grade=scene.grade,
                grade_intensity=scene.grade_intensity,
                end_image=scene.end_image,
                **(
                    _remade(scene, job, image) if scene.index == index else _kept(scene)
                ),
            )
            for scene in old_scenes
        )
        scheduler.submit(child)
    return child
