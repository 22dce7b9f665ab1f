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
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.exceptions import Ignore
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction

from media_jobs import lifecycle
from media_jobs.models import Job
from media_jobs.orchestration import fan_out
from media_jobs.progress import ProgressManager
from workers.assembly.presets import get_preset
from workers.assembly.render import ProgressCallback, RenderReport, render_timeline
from workers.assembly.stills import inspect_image
from workers.assembly.timeline import MAX_MANIFEST_BYTES, TimelineError, load_timeline

from .analysis import analyse_file, find_analysis
from .files import delete_file, local_file, scratch_dir, store_file
from .models import Asset, AudioAnalysis, Project, Render, Scene
from .storyboard import DEFAULT_FOCUS, PlanningError
from .storyboard import plan_scenes as plan_storyboard

logger = logging.getLogger(__name__)

# The engine that moves the stills, joins the scenes and encodes the video
# (workers.assembly.render); named in every manifest. Bump it when its output
# changes.
ASSEMBLY_ENGINE_VERSION = "timeline-1"

# The colour grade of each project style: (GRADES preset, intensity), or None
# for an ungraded picture.
STYLE_GRADES: dict[str, tuple[str, float] | None] = {
    "cinematic": ("cinematic_teal_orange", 0.7),
    "dreamy": ("pastel", 0.6),
    "energetic": ("neon", 0.5),
    "documentary": None,
}

MUSIC_FADE_OUT_S = 0.5  # the song's fade at the end of the video
PROGRESS_POLL_S = 0.25  # how often the assemble stage reports frames

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


def _name_uploads(message: str, assets: Sequence[Asset]) -> str:
    """``message`` with every stored file named as the user uploaded it."""
    for asset in assets:
        stored = Path(asset.file.name).name
        message = message.replace(stored, asset.original_name)
    return message


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
        try:
            planned = plan_storyboard(
                analysis.to_contract(),
                duration=duration,
                fps=preset.fps,
                image_count=len(images),
            )
        except PlanningError as exc:
            raise PipelineError(str(exc)) from exc
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
                    transition=p.transition,
                    transition_frames=p.transition_frames,
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


def scene_fingerprint(scene: Scene, width: int, height: int, fps: int) -> str:
    """Everything that decides the scene's own frames (its joins aside)."""
    key = {
        "engine": ASSEMBLY_ENGINE_VERSION,
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
    if (
        scene.status == Scene.Status.DONE
        and scene.clip
        and default_storage.exists(scene.clip)
    ):
        return scene_id  # a second delivery of a finished scene
    preset = get_preset(scene.job.params["preset"])
    fingerprint = scene_fingerprint(scene, preset.width, preset.height, preset.fps)
    started = time.monotonic()
    Scene.objects.filter(pk=scene_id).update(
        status=Scene.Status.RUNNING, fingerprint=fingerprint
    )
    # A photo needs no clip of its own: the renderer moves the still while it
    # assembles. What this step owes the assembly is a source that can be
    # read, found now with the scene named rather than halfway through the
    # video. (Scenes from a video model will render their clip here.)
    try:
        with local_file(scene.image.file.name) as image:
            inspect_image(image)
    except Exception as exc:
        # Engines name the stored file; the user knows the photo by its name.
        error = f"scene {scene.index}: {_in_user_terms(exc, scene.image)}"
        Scene.objects.filter(pk=scene_id).update(
            status=Scene.Status.FAILED, error=error
        )
        raise PipelineError(error) from exc
    Scene.objects.filter(pk=scene_id).update(
        status=Scene.Status.DONE,
        clip=scene.image.file.name,
        cached=False,
        error="",
        seconds=round(time.monotonic() - started, 3),
    )
    _report_scene_progress(scene.job_id)
    return scene_id


def style_grade(style: str) -> dict[str, Any] | None:
    """The timeline's ``grade`` for a project style; None: no grade."""
    choice = STYLE_GRADES.get(style)
    if choice is None:
        return None
    preset, intensity = choice
    return {"preset": preset, "intensity": intensity}


def _job_style(job: Job) -> str:
    return job.params.get("style") or job.project.style


def build_manifest(job: Job, scenes: list[Scene], analysis: AudioAnalysis) -> dict:
    project = job.project
    preset = get_preset(job.params["preset"])
    fps = preset.fps
    return {
        "manifest_version": 2,
        "project": {"id": project.pk, "title": project.title},
        "style": _job_style(job),
        "grade": style_grade(_job_style(job)),
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
                # Into the next scene, centred on its first frame.
                "transition": {
                    "type": s.transition,
                    "frames": s.transition_frames,
                    "duration": s.transition_frames / fps,
                },
                "model": "assembly",
                "model_revision": ASSEMBLY_ENGINE_VERSION,
                "seed": None,
                "fingerprint": s.fingerprint,
                "cached": s.cached,
                "seconds": s.seconds,
            }
            for s in scenes
        ],
        "models": [{"key": "assembly", "revision": ASSEMBLY_ENGINE_VERSION}],
        "timings": job.params.get("timings", {}),
    }


def _embeddable(manifest: dict) -> dict:
    """The manifest to write into the video file: whole when it fits the
    timeline's limit, else without its longest lists (a long video's
    per-scene entries), which stay in the Render row."""
    data = dict(manifest)
    for key in ("scenes", "cuts"):
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
        if size <= MAX_MANIFEST_BYTES // 2:  # leave room for the timeline's own
            break
        if key in data:
            data[f"{key}_omitted"] = len(data.pop(key))
    return data


def build_timeline(
    scenes: Sequence[Scene],
    sources: Sequence[Path],
    *,
    song: Path,
    preset: str,
    fmt: str,
    fps: int,
    style: str,
    beats: Sequence[float] = (),
    manifest: dict | None = None,
) -> dict[str, Any]:
    """The timeline document (``workers.assembly.timeline``) of planned
    scenes; ``sources[k]`` is the local path of scene k's photo.

    Scene k covers output frames [start_frame, end_frame) from cut to cut; a
    transition of n frames centred on a cut at frame c covers
    [c - n // 2, c - n // 2 + n), so clip k starts n_in // 2 frames before
    its first cut frame and ends n_out - n_out // 2 frames after its last,
    and consecutive clips overlap by exactly the transition.
    """
    if len(sources) != len(scenes):
        raise ValueError("one source per scene")
    total = scenes[-1].end_frame
    clips: list[dict[str, Any]] = []
    for k, (scene, source) in enumerate(zip(scenes, sources, strict=True)):
        incoming = scenes[k - 1].transition_frames if k else 0
        last = k == len(scenes) - 1
        outgoing = 0 if last else scene.transition_frames
        first = scene.start_frame - incoming // 2
        end = scene.end_frame + (outgoing - outgoing // 2)
        clip: dict[str, Any] = {
            "source": {"kind": "still", "file": str(source)},
            "start": first / fps,
            "duration": (end - first) / fps,
            "move": scene.move,
            "focus": {"x": DEFAULT_FOCUS[0], "y": DEFAULT_FOCUS[1]},
        }
        if not last:
            kind = scene.transition if outgoing else "cut"
            clip["transition"] = {"type": kind, "duration": outgoing / fps}
        clips.append(clip)
    seconds = total / fps
    doc: dict[str, Any] = {
        "version": 1,
        "output": {"preset": preset, "format": fmt, "duration": seconds},
        "clips": clips,
        # A short video gets a shorter fade, so the song is heard at all.
        "audio": [
            {
                "file": str(song),
                "role": "music",
                "fade_out": min(MUSIC_FADE_OUT_S, seconds / 4),
            }
        ],
        "cuts": [s.start_frame / fps for s in scenes[1:]],
        "beats": sorted({float(b) for b in beats if 0 <= b <= seconds}),
    }
    grade = style_grade(style)
    if grade is not None:
        doc["grade"] = grade
    if manifest is not None:
        doc["manifest"] = _embeddable(manifest)
    return doc


def _render_reporting(
    render: Callable[[ProgressCallback, threading.Event], RenderReport],
    progress: ProgressManager,
) -> RenderReport:
    """Run ``render(on_progress)`` on a helper thread while this thread
    reports its frames to ``progress``, about every 1 %.

    The engine calls ``on_progress`` from its encoder's reader thread. Job
    rows are written from here instead, the task's own thread, whose database
    connection Django and Celery manage (and whose transaction a test sees);
    the reader thread only leaves the latest count. If this thread is
    interrupted (the task's soft time limit, a database error), the render is
    told to stop and is waited for, so no ffmpeg outlives the task.
    """
    latest = (0, 0)
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def record(done: int, total: int) -> None:
        nonlocal latest
        latest = (done, total)  # one assignment: read whole by the other side

    def run() -> None:
        try:
            outcome["report"] = render(record, stop)
        except BaseException as exc:  # re-raised below, in the task's thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="render-timeline", daemon=True)
    worker.start()
    sent = 0
    try:
        while worker.is_alive():
            worker.join(PROGRESS_POLL_S)
            done, total = latest
            if total and done < total and done - sent >= max(1, total // 100):
                progress.update(done / total, f"frame {done} of {total}", force=True)
                sent = done
    except BaseException:
        stop.set()
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    report: RenderReport = outcome["report"]
    progress.update(1.0, f"frame {report.frames} of {report.frames}", force=True)
    return report


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
    manifest = build_manifest(job, scenes, analysis)
    stored: list[str] = []
    with ProgressManager(job_id, "assemble") as progress, ExitStack() as stack:
        tmp = stack.enter_context(scratch_dir(f"assemble-{job_id}"))
        # Photos shown by several scenes are fetched once.
        local: dict[str, Path] = {}
        for name in dict.fromkeys(s.clip for s in scenes):
            local[name] = stack.enter_context(local_file(name))
        music = stack.enter_context(local_file(song.file.name))
        doc = build_timeline(
            scenes,
            [local[s.clip] for s in scenes],
            song=music,
            preset=preset.name,
            fmt=fmt,
            fps=preset.fps,
            style=_job_style(job),
            beats=analysis.beats,
            manifest=manifest,
        )
        try:
            timeline = load_timeline(doc)
        except TimelineError as exc:  # a planning bug, not the user's doing
            raise PipelineError(f"the planned timeline is not valid: {exc}") from exc
        video = tmp / f"video.{fmt}"
        thumb = tmp / "thumbnail.jpg"
        try:
            report = _render_reporting(
                lambda on_progress, stop: render_timeline(
                    timeline,
                    video,
                    base_dir=tmp,
                    thumbnail=thumb,
                    on_progress=on_progress,
                    tags={"title": project.title},
                    stop=stop,
                ),
                progress,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise PipelineError(
                _name_uploads(str(exc), [song, *(s.image for s in scenes)])
            ) from exc
        base = f"renders/{project.owner_id}/{job_id}"
        try:
            stored.append(store_file(video, f"{base}/video.{fmt}"))
            stored.append(store_file(thumb, f"{base}/thumbnail.jpg"))
        except BaseException:
            for name in stored:
                delete_file(name)
            raise
        video_name, thumb_name = stored
        size = video.stat().st_size
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
                width=report.width,
                height=report.height,
                fps=report.fps,
                duration=report.duration,
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
    lifecycle.succeed(job_id, f"{len(scenes)} scenes, {report.duration:.2f} s")
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
