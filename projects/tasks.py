"""Celery tasks of the render pipeline. Each takes ids, reads its inputs from
the database and storage, writes outputs under content-addressed or job-scoped
names, and is safe to run twice.

    analyze_music → plan_scenes → chord(render_scene × N) → assemble_render
                    (render_failed on any error)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path

from celery import shared_task
from celery.exceptions import Ignore
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from media_jobs import lifecycle
from media_jobs.models import Job
from media_jobs.orchestration import fan_out
from media_jobs.progress import ProgressManager
from workers.assembly.concat import assemble_video, extract_thumbnail
from workers.assembly.presets import get_preset
from workers.assembly.stills import render_still_clip

from .analysis import analyse_file, find_analysis
from .files import delete_file, local_file, scratch_dir, store_file
from .models import Asset, AudioAnalysis, Project, Render, Scene
from .storyboard import DEFAULT_FOCUS
from .storyboard import plan_scenes as plan_storyboard

logger = logging.getLogger(__name__)

# Bump when the clip engine's output changes, so cached clips are not reused.
CLIP_ENGINE_VERSION = "cpu-motion-1"

TASK_LIMITS = {
    "soft_time_limit": settings.TASK_SOFT_TIME_LIMIT,
    "time_limit": settings.TASK_TIME_LIMIT,
}


class PipelineError(ValueError):
    """The project is not ready for this step; the message says what to do."""


def _running_job(job_id: int) -> Job | None:
    """The job if this task should work on it (not failed or cancelled meanwhile)."""
    return (
        Job.objects.select_related("project")
        .filter(pk=job_id, status=Job.Status.RUNNING)
        .first()
    )


def _job_music(job: Job) -> Asset:
    """The song this render was asked with (frozen in the job's params)."""
    song = Asset.objects.filter(
        pk=job.params.get("music"), project=job.project, kind=Asset.Kind.AUDIO
    ).first()
    if song is None:
        raise PipelineError("the song of this render was removed while it ran")
    return song


def _in_user_terms(exc: BaseException, asset: Asset) -> str:
    """The engine's message, naming the file as the user uploaded it rather
    than by its server-made storage name."""
    stored = Path(asset.file.name).name
    message = lifecycle.describe_error(exc)
    if stored in message:
        return message.replace(stored, asset.original_name)
    return f"{asset.original_name}: {message}"


def _begin_stage(job_id: int, stage: str) -> Job | None:
    """The job if this delivery should run ``stage``; None once the job is
    over (failed or cancelled). A stage that already finished means this is a
    second delivery whose successor was sent the first time: it stops here,
    and ``Ignore`` keeps Celery from sending the successor again."""
    job = _running_job(job_id)
    if job is not None and lifecycle.stage_finished(job, stage):
        raise Ignore()
    return job


def ensure_analysis(
    asset: Asset, progress: ProgressManager | None = None
) -> AudioAnalysis:
    """The song's analysis, computed once per content hash and engine version."""
    existing = find_analysis(asset.sha256)
    if existing is not None:
        return existing
    if progress:
        progress.update(0.0, f"analysing {asset.original_name}", force=True)
    with local_file(asset.file.name) as path:
        try:
            return analyse_file(
                path, asset.sha256, progress.update if progress else None
            )
        except ValueError as exc:  # AudioDecodeError, AudioAnalysisError
            raise PipelineError(_in_user_terms(exc, asset)) from exc


@shared_task(name="projects.analyze_music", bind=True, **TASK_LIMITS)
def analyze_music(self, job_id: int) -> None:
    lifecycle.claim(job_id, self.request.id or "")
    job = _begin_stage(job_id, "analyze")
    if job is None:
        return
    Project.objects.filter(pk=job.project_id).update(status=Project.Status.RENDERING)
    started = time.monotonic()
    with ProgressManager(job_id, "analyze") as progress:
        analysis = ensure_analysis(_job_music(job), progress)
        summary = f"{analysis.bpm:.1f} BPM, {len(analysis.beats)} beats"
    lifecycle.finish_stage(job_id, "analyze", time.monotonic() - started, summary)


@shared_task(name="projects.plan_scenes", bind=True, **TASK_LIMITS)
def plan_scenes(self, job_id: int):
    job = _begin_stage(job_id, "plan")
    if job is None:
        return None
    project = job.project
    started = time.monotonic()
    with ProgressManager(job_id, "plan"):
        analysis = ensure_analysis(_job_music(job))
        images = list(project.images())
        preset = get_preset(job.params["preset"])
        requested = float(job.params["duration"])
        duration = min(requested, analysis.duration)
        planned = plan_storyboard(
            beats=analysis.beats,
            downbeats=analysis.downbeats,
            sections=analysis.sections,
            duration=duration,
            fps=preset.fps,
            image_count=len(images),
        )
        with transaction.atomic():
            # One planner at a time per job; a delivery that finds the plan
            # made stops, so the scenes a chord is rendering stay as they are.
            locked = Job.objects.select_for_update().get(pk=job_id)
            if lifecycle.stage_finished(locked, "plan"):
                raise Ignore()
            # Scenes of an interrupted earlier delivery are replaced.
            Scene.objects.filter(job_id=job_id).delete()
            scenes = Scene.objects.bulk_create(
                Scene(
                    project=project,
                    job_id=job_id,
                    index=p.index,
                    start=p.start(preset.fps),
                    end=p.end(preset.fps),
                    start_frame=p.start_frame,
                    end_frame=p.end_frame,
                    image=images[p.image_index],
                    move=p.move,
                )
                for p in planned
            )
            lifecycle.finish_stage(
                job_id,
                "plan",
                time.monotonic() - started,
                f"{len(scenes)} scenes planned",
                params={
                    "requested_duration": requested,
                    "duration": round(duration * preset.fps) / preset.fps,
                },
            )
    scene_ids = [scene.pk for scene in sorted(scenes, key=lambda s: s.index)]
    return fan_out(
        self, "projects.render_scene", scene_ids, "projects.assemble_render", job_id
    )


def clip_fingerprint(scene: Scene, width: int, height: int, fps: int) -> str:
    """Everything that decides a clip's pixels, so equal inputs share one clip."""
    key = {
        # Per owner: whether a clip exists must say nothing about other users.
        "owner": scene.project.owner_id,
        "engine": CLIP_ENGINE_VERSION,
        "image": scene.image.sha256,
        "size": [width, height],
        "fps": fps,
        "frames": scene.frames,
        "move": scene.move,
        "focus": list(DEFAULT_FOCUS),
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _report_scene_progress(job_id: int) -> None:
    scenes = Scene.objects.filter(job_id=job_id)
    total = scenes.count()
    done = scenes.filter(status=Scene.Status.DONE).count()
    ProgressManager(job_id, "scenes").update(
        done / total if total else 1.0, f"{done} of {total} scenes rendered", force=True
    )


@shared_task(name="projects.render_scene", bind=True, **TASK_LIMITS)
def render_scene(self, scene_id: int) -> int | None:
    scene = (
        Scene.objects.select_related("image", "job", "project")
        .filter(pk=scene_id)
        .first()
    )
    if scene is None or _running_job(scene.job_id) is None:
        return None
    if scene.status == Scene.Status.DONE and default_storage.exists(scene.clip):
        return scene_id  # a second delivery of a finished scene
    job = scene.job
    preset = get_preset(job.params["preset"])
    fingerprint = clip_fingerprint(scene, preset.width, preset.height, preset.fps)
    name = f"cache/clips/{fingerprint}.mp4"
    started = time.monotonic()
    Scene.objects.filter(pk=scene_id).update(
        status=Scene.Status.RUNNING, fingerprint=fingerprint
    )
    cached = default_storage.exists(name)
    try:
        if not cached:
            with (
                scratch_dir(f"scene-{scene_id}") as tmp,
                local_file(scene.image.file.name) as image,
            ):
                out = tmp / "clip.mp4"
                render_still_clip(
                    image,
                    out,
                    width=preset.width,
                    height=preset.height,
                    fps=preset.fps,
                    frames=scene.frames,
                    move=scene.move,
                    focus=DEFAULT_FOCUS,
                )
                store_file(out, name)
    except Exception as exc:
        # Engines name the stored file; the user knows the photo by its name.
        error = f"scene {scene.index}: {_in_user_terms(exc, scene.image)}"
        Scene.objects.filter(pk=scene_id).update(
            status=Scene.Status.FAILED, error=error
        )
        raise PipelineError(error) from exc
    Scene.objects.filter(pk=scene_id).update(
        status=Scene.Status.DONE,
        clip=name,
        cached=cached,
        error="",
        seconds=round(time.monotonic() - started, 3),
    )
    _report_scene_progress(scene.job_id)
    return scene_id


def build_manifest(job: Job, scenes: list[Scene], analysis: AudioAnalysis) -> dict:
    project = job.project
    preset = get_preset(job.params["preset"])
    fps = preset.fps
    return {
        "manifest_version": 1,
        "project": {"id": project.pk, "title": project.title},
        "style": job.params.get("style", project.style),
        "job": job.pk,
        "output": {
            "preset": preset.name,
            "width": preset.width,
            "height": preset.height,
            "fps": fps,
            "format": job.params.get("format", project.output_format),
            "duration": job.params["duration"],
            "requested_duration": job.params["requested_duration"],
            "frames": scenes[-1].end_frame if scenes else 0,
        },
        "music": {
            "sha256": analysis.sha256,
            "bpm": round(analysis.bpm, 3),
            "bpm_confidence": round(analysis.bpm_confidence, 3),
            "analysis_engine": analysis.engine_version,
        },
        "cuts": [s.start for s in scenes[1:]],
        "scenes": [
            {
                "index": s.index,
                "start": s.start,
                "end": s.end,
                "start_frame": s.start_frame,
                "end_frame": s.end_frame,
                "image": {"sha256": s.image.sha256, "name": s.image.original_name},
                "move": s.move,
                "model": "cpu-motion",
                "model_revision": CLIP_ENGINE_VERSION,
                "seed": None,
                "fingerprint": s.fingerprint,
                "cached": s.cached,
                "seconds": s.seconds,
            }
            for s in scenes
        ],
        "models": [{"key": "cpu-motion", "revision": CLIP_ENGINE_VERSION}],
        "timings": job.params.get("timings", {}),
    }


@shared_task(name="projects.assemble_render", bind=True, **TASK_LIMITS)
def assemble_render(self, job_id: int) -> int | None:
    job = _running_job(job_id)
    if job is None:
        return None
    project = job.project
    existing = Render.objects.filter(job_id=job_id).first()
    if existing is not None:  # a second delivery after the render was saved
        lifecycle.succeed(job_id)
        return existing.pk
    started = time.monotonic()
    scenes = list(
        Scene.objects.select_related("image").filter(job_id=job_id).order_by("index")
    )
    unfinished = [s.index for s in scenes if s.status != Scene.Status.DONE]
    if not scenes or unfinished:
        raise PipelineError(
            f"scenes {unfinished} did not finish, so the video cannot be assembled"
        )
    song = _job_music(job)
    analysis = ensure_analysis(song)
    preset = get_preset(job.params["preset"])
    fmt = job.params.get("format", project.output_format)
    duration = job.params["duration"]
    manifest = build_manifest(job, scenes, analysis)
    with ProgressManager(job_id, "assemble") as progress, ExitStack() as stack:
        tmp = stack.enter_context(scratch_dir(f"assemble-{job_id}"))
        clips = [stack.enter_context(local_file(s.clip)) for s in scenes]
        music = stack.enter_context(local_file(song.file.name))
        video = tmp / f"video.{fmt}"
        assemble_video(
            clips,
            music,
            video,
            fps=preset.fps,
            duration=duration,
            fmt=fmt,
            metadata={
                "title": project.title,
                "comment": json.dumps(manifest["output"]),
            },
            on_progress=lambda f: progress.update(0.9 * f),
        )
        thumb = tmp / "thumbnail.jpg"
        extract_thumbnail(video, thumb, at_seconds=min(duration / 2, scenes[0].end))
        base = f"renders/{project.owner_id}/{job_id}"
        video_name = store_file(video, f"{base}/video.{fmt}")
        thumb_name = store_file(thumb, f"{base}/thumbnail.jpg")
        size = Path(video).stat().st_size
    try:
        with transaction.atomic():
            if not lifecycle.finish_stage(
                job_id, "assemble", time.monotonic() - started
            ):
                raise Ignore()  # another delivery finished this render first
            job.refresh_from_db(fields=["params"])
            manifest["timings"] = job.params.get("timings", {})
            render = Render.objects.create(
                project=project,
                job_id=job_id,
                file=video_name,
                thumbnail=thumb_name,
                output_format=fmt,
                preset=preset.name,
                width=preset.width,
                height=preset.height,
                fps=preset.fps,
                duration=duration,
                size=size,
                manifest=manifest,
            )
            Project.objects.filter(pk=project.pk).update(status=Project.Status.RENDERED)
    except Ignore:
        raise
    except BaseException:
        # No Render row points at them: the stored files would be orphans.
        delete_file(video_name)
        delete_file(thumb_name)
        raise
    lifecycle.succeed(job_id, f"{len(scenes)} scenes, {duration:.2f} s")
    return render.pk


@shared_task(name="projects.analyze_song", bind=True, **TASK_LIMITS)
def analyze_song(self, job_id: int) -> int | None:
    """An analysis job: analyse one uploaded song as soon as it arrives, so
    its picture is on the project page and a render finds it ready."""
    lifecycle.claim(job_id, self.request.id or "")
    job = _running_job(job_id)
    if job is None:
        return None
    song = Asset.objects.filter(
        pk=job.params.get("asset"), project=job.project, kind=Asset.Kind.AUDIO
    ).first()
    if song is None:
        raise PipelineError("the song was removed before it was analysed")
    with ProgressManager(job_id, "analyze", span=(0.0, 0.99)) as progress:
        analysis = ensure_analysis(song, progress)
    lifecycle.succeed(job_id, f"{analysis.bpm:.1f} BPM, {len(analysis.beats)} beats")
    return analysis.pk


@shared_task(name="projects.job_failed")
def job_failed(request, exc, traceback, job_id: int) -> None:
    """Error callback of a one-task job: fail it once, say why."""
    lifecycle.fail(job_id, lifecycle.describe_error(exc))


@shared_task(name="projects.render_failed")
def render_failed(request, exc, traceback, job_id: int) -> None:
    """Error callback of the whole render canvas: fail the job once, say why."""
    if lifecycle.fail(job_id, lifecycle.describe_error(exc)):
        Project.objects.filter(jobs__pk=job_id).update(status=Project.Status.FAILED)
