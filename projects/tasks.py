"""Celery tasks of the render pipeline. Each takes ids, reads its inputs from
the database and storage, writes outputs under content-addressed or job-scoped
names, and is safe to run twice.

    analyze_music → plan_scenes → chord(render_scene × N) → assemble_render
                    (render_failed on any error)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.exceptions import Ignore, SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from characters.models import Character
from media_jobs import cache, lifecycle, records
from media_jobs.files import (
    delete_file,
    local_file,
    scratch_dir,
    store_file,
)
from media_jobs.models import CacheEntry, Job, JobStage, ModelSpec
from media_jobs.orchestration import fan_out
from media_jobs.progress import JobStopped, ProgressManager, publish_scene
from media_jobs.tracking import time_limit_error, tracked
from workers.assembly.presets import OutputPreset
from workers.assembly.render import ProgressCallback, RenderReport, render_timeline
from workers.assembly.timeline import MAX_MANIFEST_BYTES, TimelineError, load_timeline
from workers.faces.base import FaceModelMissing
from workers.scenes import SceneStopped

from . import storyboards
from .analysis import analyse_file, find_analysis
from .casting import cast_for_photo, photo_matches, render_character
from .models import Asset, AudioAnalysis, Project, Render, Scene
from .pipeline import scenes_canvas
from .scene_engines import engine_for, model_spec
from .scene_making import is_picture, make_checked, scene_fingerprint
from .storyboards import StoryboardError, move_strength
from .styles import UnknownStyle

logger = logging.getLogger(__name__)

# The engine that moves the stills, joins the scenes and encodes the video
# (workers.assembly.render); named in every manifest. Bump it when its output
# changes.
ASSEMBLY_ENGINE_VERSION = "timeline-1"

MUSIC_FADE_OUT_S = 0.5  # the song's fade at the end of the video
PROGRESS_POLL_S = 0.25  # how often the assemble stage reports frames

# The tasks carry no time limits of their own: Celery would write the
# sending process's limits into every message. The worker that runs a task
# applies its own (``manage.py worker`` passes STUDIO_TASK_*_TIME_LIMIT), so a
# GPU host can allow its models longer than a CPU host allows assembly.


class PipelineError(ValueError):
    """The project is not ready for this step; the message says what to do."""


def _running_job(job_id: int) -> Job | None:
    """The job if this task should work on it (not failed or cancelled
    meanwhile). A queued job is claimed first: the first task of a retried or
    resumed canvas may be any stage or a scene."""
    lifecycle.claim(job_id)
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


@shared_task(name="projects.analyze_music", bind=True)
def analyze_music(self, job_id: int) -> None:
    job = _begin_stage(job_id, "analyze")
    if job is None:
        return
    if job.kind == Job.Kind.RENDER:  # planning a storyboard renders nothing
        Project.objects.filter(pk=job.project_id).update(
            status=Project.Status.RENDERING
        )
    started = time.monotonic()
    with (
        tracked(self, job_id, "analyze", "analyze", what="the music analysis") as run,
        ProgressManager(job_id, "analyze") as progress,
    ):
        song = _job_music(job)
        run["cached"] = find_analysis(song.sha256) is not None
        analysis = ensure_analysis(song, progress)
        summary = f"{analysis.bpm:.1f} BPM, {len(analysis.beats)} beats"
        if run["cached"]:
            summary += " (cached)"
    lifecycle.finish_stage(job_id, "analyze", time.monotonic() - started, summary)
    if run["cached"]:
        records.mark_stage_cached(job_id, "analyze")


@contextmanager
def _photos_named(images: Sequence[Asset]) -> Iterator[None]:
    """Face work on the project's photos fails with the photos named as the
    user uploaded them, and a missing face model says how to get it."""
    try:
        yield
    except FaceModelMissing as exc:
        raise PipelineError(str(exc)) from exc
    except ValueError as exc:
        raise PipelineError(_name_uploads(str(exc), images)) from exc


@shared_task(name="projects.find_character", bind=True)
def find_character(self, job_id: int) -> None:
    """Who this render is about (Quick mode registers them from the photos)
    and which photos show them, for the planner and the consistency gate."""
    job = _begin_stage(job_id, "character")
    if job is None:
        return
    started = time.monotonic()
    with (
        tracked(
            self, job_id, "character", "character", what="finding the character"
        ) as run,
        ProgressManager(job_id, "character") as progress,
    ):
        images = list(job.project.images())
        with _photos_named(images):
            cast = render_character(job.project, images, progress.update)
            character = cast.character
            if character is None:
                matches, computed = {}, 0
            elif cast.matches is not None:
                matches, computed = cast.matches, 0  # made while finding them
            else:
                matches, computed = photo_matches(character, images, progress.update)
        # Nothing registered or looked for, every photo's match from the cache.
        run["cached"] = not cast.worked and computed == 0 and character is not None
    if character is None:
        summary, found = "no character to check scenes against", None
    else:
        shown = sum(1 for m in matches.values() if m["shows_character"])
        summary = f"{character.name}: in {shown} of {len(images)} photos"
        found = {"id": character.pk, "name": character.name, "photos": matches}
    lifecycle.finish_stage(
        job_id,
        "character",
        time.monotonic() - started,
        summary,
        params={"character": found},
    )
    if run["cached"]:
        records.mark_stage_cached(job_id, "character")


@shared_task(name="projects.cast_project", bind=True)
def cast_project(self, job_id: int) -> int | None:
    """Quick mode as photos arrive: find the project's character in its
    photos (or add new photos of that person to it)."""
    job = _running_job(job_id)
    if job is None:
        return None
    with (
        tracked(self, job_id, "character", "character", what="finding the character"),
        ProgressManager(job_id, "character", span=(0.0, 0.99)) as progress,
    ):
        images = list(job.project.images())
        with _photos_named(images):
            cast = render_character(job.project, images, progress.update)
    lifecycle.finish_stage(job_id, "character", 0.0)
    character = cast.character
    if character is None:
        lifecycle.succeed(job_id, "no face found in the photos yet")
        return None
    lifecycle.succeed(
        job_id, f"{character.name}: {character.reference_count} photos in the identity"
    )
    return character.pk


def _cast_fields(job: Job, image: Asset) -> dict[str, Any]:
    """The Scene fields of a scene made from ``image``: the character it
    shows and where its camera closes in (``cast_for_photo``)."""
    character_id, (x, y) = cast_for_photo(job, image)
    return {"character_id": character_id, "focus_x": x, "focus_y": y}


def _job_character(job: Job) -> Character | None:
    found = job.params.get("character") or {}
    return Character.objects.filter(pk=found.get("id")).first() if found else None


@shared_task(name="projects.plan_scenes", bind=True)
def plan_scenes(self, job_id: int):
    """The storyboard (Advanced mode's as edited, else planned now), then
    the render's scenes from it. A storyboard job stops after planning."""
    job = _begin_stage(job_id, "plan")
    if job is None:
        return None
    project = job.project
    started = time.monotonic()
    with (
        tracked(self, job_id, "plan", "plan", what="the storyboard planning"),
        ProgressManager(job_id, "plan"),
    ):
        analysis = ensure_analysis(_job_music(job))
        images = list(project.images())
        cast = {image.pk: _cast_fields(job, image) for image in images}
        try:
            board = (
                storyboards.saved_for_render(project, job.params)
                if job.kind == Job.Kind.RENDER
                else None
            )
            planned = board is None
            if board is None:
                board = storyboards.plan(
                    project,
                    analysis,
                    images,
                    params=job.params,
                    shows_character=lambda image: (
                        cast[image.pk]["character_id"] is not None
                    ),
                    character=_job_character(job),
                )
        except (StoryboardError, UnknownStyle) as exc:
            raise PipelineError(str(exc)) from exc
        shots = list(board.shots.select_related("image").order_by("index"))
        summary = f"{len(shots)} scenes " + ("planned" if planned else "as edited")
        if job.kind == Job.Kind.STORYBOARD:
            # Asked to see the plan before rendering: the next render takes
            # this storyboard as it stands (Advanced mode).
            Project.objects.filter(pk=project.pk).update(mode=Project.Mode.ADVANCED)
            lifecycle.finish_stage(
                job_id, "plan", time.monotonic() - started, summary,
                params={"storyboard": board.version},
            )  # fmt: skip
            lifecycle.succeed(job_id, summary)
            return None
        with transaction.atomic():
            # One planner at a time per job; a delivery that finds the plan
            # made stops, so the scenes a chord is rendering stay as they are.
            locked = Job.objects.select_for_update().get(pk=job_id)
            if lifecycle.stage_finished(locked, "plan"):
                raise Ignore()
            # Scenes of an interrupted earlier delivery are replaced.
            Scene.objects.filter(job_id=job_id).delete()
            scenes = Scene.objects.bulk_create(
                storyboards.scene_for_shot(
                    shot,
                    board.fps,
                    project=project,
                    job_id=job_id,
                    **(cast.get(shot.image_id) or _cast_fields(job, shot.image)),
                )
                for shot in shots
            )
            lifecycle.finish_stage(
                job_id,
                "plan",
                time.monotonic() - started,
                summary,
                params={
                    "requested_duration": float(job.params["duration"]),
                    "duration": board.duration,
                    "storyboard": board.version,
                    # What the scenes were planned for (the format is the
                    # render's own choice).
                    **{
                        k: v
                        for k, v in storyboards.render_settings(board).items()
                        if k != "format"
                    },
                },
            )
    ordered = sorted(scenes, key=lambda s: s.index)
    return fan_out(self, scenes_canvas(job, ordered))


def _report_scene_progress(job_id: int) -> None:
    scenes = Scene.objects.filter(job_id=job_id)
    total = scenes.count()
    done = scenes.filter(status=Scene.Status.DONE).count()
    cached = scenes.filter(status=Scene.Status.DONE, cached=True).count()
    message = f"{done} of {total} scenes rendered"
    if cached:
        message += f" ({cached} from the cache)"
    try:
        ProgressManager(job_id, "scenes").update(
            done / total if total else 1.0, message, force=True
        )
    except JobStopped:
        pass  # cancelled or failed just after this scene finished: it is done


def _publish_scene(scene_id: int) -> None:
    scene = Scene.objects.filter(pk=scene_id).first()
    if scene is None:
        return
    run = (
        records.TaskRun.objects.filter(job_id=scene.job_id, key=f"scene-{scene.index}")
        .only("worker", "queue")
        .first()
    )
    publish_scene(
        {
            "type": "job.scene",
            "job": scene.job_id,
            "scene": scene.pk,
            "index": scene.index,
            "status": scene.status,
            "cached": scene.cached,
            "has_thumbnail": bool(scene.thumbnail),
            "seconds": scene.seconds,
            "worker": run.worker if run else "",
            "queue": run.queue if run else "",
            "error": scene.error,
        }
    )


def _recast(scene: Scene) -> None:
    """A scene whose photo was replaced after planning: whether the new
    photo shows the character, and where its face is, decided here on the
    worker (``cast_for_photo``)."""
    character_id, focus = cast_for_photo(scene.job, scene.image)
    if (character_id, focus) != (scene.character_id, scene.focus):
        scene.character_id, (scene.focus_x, scene.focus_y) = character_id, focus
        Scene.objects.filter(pk=scene.pk).update(
            character_id=character_id, focus_x=focus[0], focus_y=focus[1]
        )


def _scene_character(scene: Scene) -> Character | None:
    """The character the scene must show, when it has an identity to check."""
    if scene.character_id is None:
        return None
    character = Character.objects.filter(pk=scene.character_id).first()
    return character if character is not None and character.is_ready else None


@shared_task(name="projects.render_scene", bind=True)
def render_scene(self, scene_id: int) -> int | None:
    scene = (
        Scene.objects.select_related("image", "job", "project")
        .filter(pk=scene_id)
        .first()
    )
    if scene is None or _running_job(scene.job_id) is None:
        return None
    records.start_stage(scene.job_id, "scenes")
    if scene.status == Scene.Status.DONE and (
        not scene.clip or default_storage.exists(scene.clip)
    ):
        return scene_id  # a second delivery of a finished scene
    key = f"scene-{scene.index}"
    _recast(scene)

    def on_progress(fraction: float, message: str) -> None:
        # Each report is also the engine's chance to learn of a cancel.
        if not records.task_progress(scene.job_id, key, fraction):
            raise JobStopped(f"job {scene.job_id} is no longer running")

    with tracked(
        self,
        scene.job_id,
        key,
        "scenes",
        what=f"scene {scene.index}",
        scene_index=scene.index,
        model_key=scene.model,
    ) as run:
        try:
            preset = storyboards.output_of(scene.job.params)
            spec = model_spec(scene.model)
            Scene.objects.filter(pk=scene_id).update(
                status=Scene.Status.RUNNING,
                fingerprint=scene_fingerprint(scene, spec, preset),
            )
            made = make_checked(
                scene,
                spec,
                preset,
                _scene_character(scene),
                on_progress,
                seeded=engine_for(spec).seeded,
            )
        except (Ignore, JobStopped, SceneStopped, SoftTimeLimitExceeded) as exc:
            timed_out = isinstance(exc, SoftTimeLimitExceeded)
            if timed_out and records.job_is_running(scene.job_id):
                _fail_scene(scene, time_limit_error(f"scene {scene.index}"))
            raise
        except FaceModelMissing as exc:
            error = f"scene {scene.index}: {exc}"
            _fail_scene(scene, error)
            raise PipelineError(error) from exc
        except Exception as exc:
            # Engines name the stored file; the user knows the photo by its name.
            error = f"scene {scene.index}: {_in_user_terms(exc, scene.image)}"
            _fail_scene(scene, error)
            raise PipelineError(error) from exc
        produced = made.produced
        run["cached"] = produced.cached
        Scene.objects.filter(pk=scene_id).update(
            status=Scene.Status.DONE,
            seed=produced.seed,
            fingerprint=produced.fingerprint,
            clip=produced.clip or scene.image.file.name,
            thumbnail=produced.thumbnail,
            cached=produced.cached,
            error="",
            seconds=round(produced.seconds, 3),
            review=made.review,
            consistency=made.score,
            gate=made.gate,
            tries=made.tries,
        )
    _publish_scene(scene_id)
    _report_scene_progress(scene.job_id)
    return scene_id


def _fail_scene(scene: Scene, error: str) -> None:
    Scene.objects.filter(pk=scene.pk).update(status=Scene.Status.FAILED, error=error)
    _publish_scene(scene.pk)


def _job_style(job: Job) -> str:
    return job.params.get("style") or job.project.style


def scene_grade(scene: Any) -> dict[str, Any] | None:
    """The timeline's ``grade`` of a scene; None: ungraded."""
    grade = getattr(scene, "grade", "")
    if not grade:
        return None
    return {"preset": grade, "intensity": scene.grade_intensity}


def build_manifest(job: Job, scenes: list[Scene], analysis: AudioAnalysis) -> dict:
    project = job.project
    revisions = dict(
        ModelSpec.objects.filter(key__in={s.model for s in scenes}).values_list(
            "key", "revision"
        )
    )
    preset = storyboards.output_of(job.params)
    fps = preset.fps
    return {
        "manifest_version": 3,
        "project": {"id": project.pk, "title": project.title},
        "style": _job_style(job),
        "storyboard": job.params.get("storyboard"),
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
        "character": job.params.get("character")
        and {
            "id": job.params["character"]["id"],
            "name": job.params["character"]["name"],
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
                "motion": s.motion,
                "grade": scene_grade(s),
                "prompt": s.prompt,
                "negative_prompt": s.negative_prompt,
                **({"end_image": s.end_image.sha256} if s.end_image else {}),
                # Into the next scene, centred on its first frame.
                "transition": {
                    "type": s.transition,
                    "frames": s.transition_frames,
                    "duration": s.transition_frames / fps,
                },
                "model": s.model,
                "model_revision": revisions.get(s.model, ""),
                "seed": s.seed,
                "fingerprint": s.fingerprint,
                "cached": s.cached,
                "seconds": s.seconds,
                **_consistency_entry(s),
            }
            for s in scenes
        ],
        "models": [
            *({"key": key, "revision": rev} for key, rev in sorted(revisions.items())),
            {"key": "assembly", "revision": ASSEMBLY_ENGINE_VERSION},
        ],
        "timings": job.params.get("timings", {}),
    }


def _consistency_entry(scene: Scene) -> dict[str, Any]:
    """What the manifest says of a scene's character check (scores only:
    never an embedding)."""
    if scene.character_id is None:
        return {}
    return {
        "character": scene.character_id,
        "consistency": {
            "score": scene.consistency,
            "review": scene.review,
            "tries": scene.tries,
            "threshold": scene.gate.get("threshold"),
        },
    }


def _embeddable(manifest: dict) -> dict:
    """The manifest to write into the video file: whole when it fits the
    timeline's limit, else without its longest lists (a long video's
    per-scene entries), which stay in the Render row. What only describes
    one run (the job's id, its timings) stays in the row too, so identical
    renders make identical files and one can stand for the other."""
    data = {k: v for k, v in manifest.items() if k not in ("job", "timings")}
    for key in ("scenes", "cuts"):
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
        if size <= MAX_MANIFEST_BYTES // 2:  # leave room for the timeline's own
            break
        if key in data:
            data[f"{key}_omitted"] = len(data.pop(key))
    return data


def is_still(scene: Scene) -> bool:
    """The scene's source is a picture moved by the renderer (its photo, or
    the still its model painted), not a clip."""
    return (
        not scene.clip or scene.clip == scene.image.file.name or is_picture(scene.clip)
    )


def build_timeline(
    scenes: Sequence[Scene],
    sources: Sequence[Path],
    *,
    song: Path,
    output: OutputPreset,
    fmt: str,
    beats: Sequence[float] = (),
    manifest: dict | None = None,
) -> dict[str, Any]:
    """The timeline document (``workers.assembly.timeline``) of planned
    scenes; ``sources[k]`` is the local path of scene k's source (its photo
    or its clip).

    Scene k covers output frames [start_frame, end_frame) from cut to cut; a
    transition of n frames centred on a cut at frame c covers
    [c - n // 2, c - n // 2 + n), so clip k starts n_in // 2 frames before
    its first cut frame and ends n_out - n_out // 2 frames after its last,
    and consecutive clips overlap by exactly the transition.
    """
    if len(sources) != len(scenes):
        raise ValueError("one source per scene")
    fps = output.fps
    total = scenes[-1].end_frame
    clips: list[dict[str, Any]] = []
    for k, (scene, source) in enumerate(zip(scenes, sources, strict=True)):
        incoming = scenes[k - 1].transition_frames if k else 0
        last = k == len(scenes) - 1
        outgoing = 0 if last else scene.transition_frames
        first = scene.start_frame - incoming // 2
        end = scene.end_frame + (outgoing - outgoing // 2)
        clip: dict[str, Any] = {
            "start": first / fps,
            "duration": (end - first) / fps,
        }
        grade = scene_grade(scene)
        if grade is not None:
            clip["grade"] = grade
        if is_still(scene):
            clip["source"] = {"kind": "still", "file": str(source)}
            clip["move"] = scene.move
            clip["focus"] = {"x": scene.focus_x, "y": scene.focus_y}
            strength = move_strength(getattr(scene, "motion", 0.5))
            if strength != 1.0:
                clip["strength"] = strength
        else:
            # A clip its engine made: played from its start, its last frame
            # held if the scene's transitions need more.
            clip["source"] = {"kind": "video", "file": str(source)}
        if not last:
            kind = scene.transition if outgoing else "cut"
            clip["transition"] = {"type": kind, "duration": outgoing / fps}
        clips.append(clip)
    seconds = total / fps
    doc: dict[str, Any] = {
        "version": 1,
        "output": {
            "width": output.width,
            "height": output.height,
            "fps": fps,
            "format": fmt,
            "duration": seconds,
        },
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


def render_fingerprint(
    job: Job, scenes: Sequence[Scene], song: Asset, analysis: AudioAnalysis
) -> str:
    """Everything the video file depends on: its scenes' fingerprints and
    joins, the song, the output settings, the grade, the renderer's version,
    and what the embedded manifest says about the project."""
    output = storyboards.output_of(job.params)
    return cache.fingerprint(
        {
            "kind": "render",
            "engine_version": ASSEMBLY_ENGINE_VERSION,
            "project": [job.project_id, job.project.title],
            "preset": job.params["preset"],
            "output": [output.width, output.height, output.fps],
            "format": job.params.get("format", job.project.output_format),
            "duration": job.params["duration"],
            "style": _job_style(job),
            "song": song.sha256,
            "analysis": [analysis.engine_version, analysis.sha256],
            # What the embedded manifest says of the character and each
            # scene's check changes the file too.
            "character": job.params.get("character") and [
                job.params["character"]["id"], job.params["character"]["name"]
            ],
            "scenes": [
                [s.fingerprint, s.start_frame, s.end_frame, s.transition,
                 s.transition_frames, s.character_id, s.review, s.consistency,
                 s.tries, s.gate.get("threshold"), s.grade, s.grade_intensity,
                 s.motion, s.prompt]
                for s in scenes
            ],
        }
    )  # fmt: skip


def _close_scenes_stage(job_id: int, scenes: Sequence[Scene]) -> None:
    """The scenes stage ends when assembly starts: its time is from its first
    scene's start, and it was cached when every scene came from the cache."""
    started = (
        JobStage.objects.filter(job_id=job_id, name="scenes")
        .values_list("started_at", flat=True)
        .first()
    )
    seconds = (timezone.now() - started).total_seconds() if started else 0.0
    cached = all(scene.cached for scene in scenes)
    if lifecycle.finish_stage(job_id, "scenes", seconds) and cached:
        records.mark_stage_cached(job_id, "scenes")


def _save_render(
    job: Job,
    *,
    fingerprint: str,
    files: tuple[str, str],
    report: dict[str, Any],
    manifest: dict,
    seconds: float,
    cached: bool,
) -> Render:
    """The Render row and the job's last stage, once; ``Ignore`` when another
    delivery saved it first."""
    with transaction.atomic():
        if not lifecycle.finish_stage(job.pk, "assemble", seconds):
            raise Ignore()  # another delivery finished this render first
        if cached:
            records.mark_stage_cached(job.pk, "assemble")
        job.refresh_from_db(fields=["params"])
        manifest["timings"] = job.params.get("timings", {})
        render = Render.objects.create(
            project=job.project,
            job_id=job.pk,
            file=files[0],
            thumbnail=files[1],
            output_format=job.params.get("format", job.project.output_format),
            preset=job.params["preset"],
            width=report["width"],
            height=report["height"],
            fps=report["fps"],
            duration=report["duration"],
            size=report["size"],
            manifest=manifest,
            fingerprint=fingerprint,
            cached=cached,
        )
        Project.objects.filter(pk=job.project_id).update(status=Project.Status.RENDERED)
        storyboards.rendered(job.project_id, job.params.get("storyboard"))
    return render


def _assemble(
    job: Job,
    scenes: list[Scene],
    song: Asset,
    analysis: AudioAnalysis,
    manifest: dict,
) -> tuple[tuple[str, str], dict[str, Any], float]:
    """Render the video; its stored (video, thumbnail) names, its report and
    the seconds it took."""
    project = job.project
    preset = storyboards.output_of(job.params)
    fmt = job.params.get("format", project.output_format)
    started = time.monotonic()
    stored: list[str] = []
    with ProgressManager(job.pk, "assemble") as progress, ExitStack() as stack:
        tmp = stack.enter_context(scratch_dir(f"assemble-{job.pk}"))
        # Photos shown by several scenes are fetched once.
        local: dict[str, Path] = {}
        for name in dict.fromkeys(s.clip for s in scenes):
            local[name] = stack.enter_context(local_file(name))
        music = stack.enter_context(local_file(song.file.name))
        doc = build_timeline(
            scenes,
            [local[s.clip] for s in scenes],
            song=music,
            output=preset,
            fmt=fmt,
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
            if isinstance(exc, JobStopped):
                raise
            raise PipelineError(
                _name_uploads(str(exc), [song, *(s.image for s in scenes)])
            ) from exc
        base = f"renders/{project.owner_id}/{job.pk}"
        try:
            stored.append(store_file(video, f"{base}/video.{fmt}"))
            stored.append(store_file(thumb, f"{base}/thumbnail.jpg"))
        except BaseException:
            for name in stored:
                delete_file(name)
            raise
        details = {
            "width": report.width,
            "height": report.height,
            "fps": report.fps,
            "duration": report.duration,
            "size": video.stat().st_size,
        }
    return (stored[0], stored[1]), details, time.monotonic() - started


def _held_for_review(job: Job) -> bool:
    """Hold the job for its owner when scenes failed the consistency gate
    and the render was asked to wait for a review (the default); True when
    it was held. The other policy assembles the video anyway."""
    if job.params.get("review_policy", "hold") != Project.ReviewPolicy.HOLD:
        return False
    with transaction.atomic():
        # The job's row lock orders this against the review actions, which
        # take it too: a scene approved meanwhile is seen here, or its
        # approval sees the job held and resumes it.
        Job.objects.select_for_update().filter(pk=job.pk).first()
        scenes = list(Scene.objects.filter(job_id=job.pk).order_by("index"))
        flagged = [s.index for s in scenes if s.review == Scene.Review.FLAGGED]
        if not flagged or any(s.status != Scene.Status.DONE for s in scenes):
            return False
        _close_scenes_stage(job.pk, scenes)
        names = ", ".join(str(i) for i in flagged)
        noun = "scene" if len(flagged) == 1 else "scenes"
        message = f"{len(flagged)} {noun} ({names}) failed the character check"
        held = lifecycle.hold_for_review(job.pk, message + " and await review")
        if held:
            Project.objects.filter(pk=job.project_id).update(
                status=Project.Status.REVIEW
            )
    return held


@shared_task(name="projects.assemble_render", bind=True)
def assemble_render(self, job_id: int) -> int | None:
    job = _running_job(job_id)
    if job is None:
        return None
    existing = Render.objects.filter(job_id=job_id).first()
    if existing is not None:  # a second delivery after the render was saved
        lifecycle.succeed(job_id)
        return existing.pk
    if _held_for_review(job):
        return None
    with tracked(self, job_id, "assemble", "assemble", what="the assembly") as run:
        scenes = list(
            Scene.objects.select_related("image")
            .filter(job_id=job_id)
            .order_by("index")
        )
        unfinished = [s.index for s in scenes if s.status != Scene.Status.DONE]
        if not scenes or unfinished:
            raise PipelineError(
                f"scenes {unfinished} did not finish, so the video cannot be assembled"
            )
        _close_scenes_stage(job_id, scenes)
        song = _job_music(job)
        analysis = ensure_analysis(song)
        manifest = build_manifest(job, scenes, analysis)
        fingerprint = render_fingerprint(job, scenes, song, analysis)
        entry = cache.lookup(
            fingerprint, CacheEntry.Kind.RENDER, exists=default_storage.exists
        )
        if entry is not None:
            run["cached"] = True
            files = (entry.files[0], entry.files[1])
            details, seconds = entry.result, 0.0
            ProgressManager(job_id, "assemble").update(
                1.0, "served from an identical earlier render", force=True
            )
        else:
            files, details, seconds = _assemble(job, scenes, song, analysis, manifest)
        try:
            render = _save_render(
                job,
                fingerprint=fingerprint,
                files=files,
                report=details,
                manifest=manifest,
                seconds=seconds,
                cached=entry is not None,
            )
        except Ignore:
            # Cancelled or failed meanwhile, or another delivery saved first.
            # Files this call rendered that no Render row of the job points
            # at would be orphans (job-scoped names: nothing else uses them).
            if entry is None and not Render.objects.filter(job_id=job_id).exists():
                for name in files:
                    delete_file(name)
            raise
        except BaseException:
            if entry is None:
                # No Render row points at them: the stored files would be orphans.
                for name in files:
                    delete_file(name)
            raise
        if entry is None:
            cache.store(
                fingerprint,
                CacheEntry.Kind.RENDER,
                files=files,
                result=details,
                engine_version=ASSEMBLY_ENGINE_VERSION,
                size=details["size"],
                seconds=seconds,
            )
    message = f"{len(scenes)} scenes, {details['duration']:.2f} s"
    lifecycle.succeed(job_id, message + (" (from the cache)" if entry else ""))
    return render.pk


@shared_task(name="projects.analyze_song", bind=True)
def analyze_song(self, job_id: int) -> int | None:
    """An analysis job: analyse one uploaded song as soon as it arrives, so
    its picture is on the project page and a render finds it ready."""
    job = _running_job(job_id)
    if job is None:
        return None
    song = Asset.objects.filter(
        pk=job.params.get("asset"), project=job.project, kind=Asset.Kind.AUDIO
    ).first()
    if song is None:
        raise PipelineError("the song was removed before it was analysed")
    with (
        tracked(self, job_id, "analyze", "analyze", what="the music analysis") as run,
        ProgressManager(job_id, "analyze", span=(0.0, 0.99)) as progress,
    ):
        run["cached"] = find_analysis(song.sha256) is not None
        analysis = ensure_analysis(song, progress)
    lifecycle.finish_stage(job_id, "analyze", 0.0)
    lifecycle.succeed(job_id, f"{analysis.bpm:.1f} BPM, {len(analysis.beats)} beats")
    return analysis.pk


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeLimitExceeded):
        return (
            "a task ran past its hard time limit of"
            f" {settings.TASK_TIME_LIMIT} s and its worker process was stopped"
        )
    return lifecycle.describe_error(exc)


@shared_task(name="projects.job_failed")
def job_failed(
    request, exc, traceback, job_id: int, attempt: int | None = None
) -> None:
    """Error callback of a one-task job: fail it once, say why."""
    lifecycle.fail(job_id, _failure_reason(exc), attempt)


@shared_task(name="projects.render_failed")
def render_failed(
    request, exc, traceback, job_id: int, attempt: int | None = None
) -> None:
    """Error callback of the whole render canvas: fail the job once, say why.
    Its scenes, project and outstanding tasks follow the job's new status in
    ``projects.receivers``, as they do for a cancel."""
    lifecycle.fail(job_id, _failure_reason(exc), attempt)
