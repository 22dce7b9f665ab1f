"""A project's storyboard: planned by ``workers.storyboard`` from the song's
analysis, the photos, the style and the script; stored as ``Storyboard`` and
``Shot`` rows; edited scene by scene in Advanced mode; turned into a render's
``Scene`` rows.

Quick mode plans the storyboard again for every render (nothing was
edited, so the newest photos, song and style count). Advanced mode plans it
when asked and then keeps it: a render uses it as it stands, and an edit
changes only its scene, so only that scene's fingerprint changes and every
other scene comes from the cache.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F

from characters.models import Character
from media_jobs import cache
from media_jobs.heartbeat import installed_on_workers, queues_holding
from media_jobs.models import CacheEntry, ModelSpec
from media_jobs.queues import CPU_QUEUE, NoQueueForModel, live_queues
from media_jobs.registry import api_key_present, store_path
from workers.assembly.grading import GRADES
from workers.assembly.motion import MOVES
from workers.assembly.presets import OutputPreset, get_preset
from workers.assembly.transitions import MAX_DURATION, TRANSITIONS
from workers.modelstore.store import StoreError, installed
from workers.storyboard import llm as llm_stage
from workers.storyboard.planner import (
    ModelChoice,
    Photo,
    PlanningError,
    ShotPlan,
    plan_storyboard,
    shot_context,
    write_prompts,
)
from workers.storyboard.prompts import STAGES, CharacterRef, ShotContext, compose
from workers.storyboard.scripts import Script, ScriptError, load_script

from .models import Asset, AudioAnalysis, Project, Scene, Shot, Storyboard
from .scene_engines import UnknownModel, model_spec, queue_for_model
from .styles import get_style

MIN_SCENE_FRAMES_S = 0.5  # an edit leaves every scene at least this long
MAX_SEED = 2**63 - 1


class StoryboardError(ValueError):
    """The storyboard cannot be planned or edited so; the message says why."""


def move_strength(motion: float) -> float:
    """How far a scene's camera move travels (the timeline's ``strength``):
    the storyboard's motion 0..1, where 0.5 is the move's usual distance."""
    return round(2.0 * motion, 4)


# --- inputs -------------------------------------------------------------------


def read_script(asset: Asset) -> Script:
    """The script in a document asset; ScriptError says what is wrong."""
    with default_storage.open(asset.file.name, "rb") as handle:
        data = handle.read()
    return load_script(Path(asset.original_name), data)


def output_of(params: Mapping[str, Any]) -> OutputPreset:
    """The frame size and rate of a render: its preset, with the size and
    rate the storyboard's render settings may override."""
    preset = get_preset(params["preset"])
    return OutputPreset(
        preset.name,
        int(params.get("width") or preset.width),
        int(params.get("height") or preset.height),
        int(params.get("fps") or preset.fps),
    )


def llm_settings() -> llm_stage.LLMSettings:
    return llm_stage.LLMSettings(
        base_url=settings.STUDIO_LLM_BASE_URL,
        model=settings.STUDIO_LLM_MODEL,
        api_key=settings.STUDIO_LLM_API_KEY,
        timeout=settings.STUDIO_LLM_TIMEOUT,
    )


def _model_kind(spec: ModelSpec) -> str:
    if spec.engine == "photo":
        return "photo"
    return "video" if spec.kind == ModelSpec.Kind.VIDEO else "image"


def _installed_here(key: str) -> bool:
    try:
        return installed(store_path(), key) is not None
    except StoreError:  # a damaged manifest: not until pulled again
        return False


def usable(
    spec: ModelSpec, queue: str, on_workers: dict[str, set[str]] | None = None
) -> bool:
    """Whether this studio can run the model now: its weights are in this
    host's store or in the store of a live worker serving ``queue`` (a
    local model; a single-file model's base pipeline as well), or its key
    is configured (an API model)."""
    if spec.location == ModelSpec.Location.API:
        return api_key_present(spec)
    if spec.location == ModelSpec.Location.LOCAL:
        base = spec.params.get("base")
        if base:  # both on one host: this one, or a worker serving the queue
            keys = [spec.key, str(base)]
            return all(map(_installed_here, keys)) or queue in queues_holding(keys)
        if queue in (on_workers or {}).get(spec.key, set()):
            return True
        return _installed_here(spec.key)
    return True


def available_models() -> list[ModelChoice]:
    """Enabled models this studio can run (``usable``) on a queue that is
    served. The CPU queue always is (the planner runs on it); GPU queues
    count while a worker on them sends heartbeats (``live_queues``)."""
    runnable = []
    on_workers = installed_on_workers()
    # Models that make a scene's picture (not faces, music or an LLM).
    pictures = [ModelSpec.Kind.SCENE, ModelSpec.Kind.IMAGE, ModelSpec.Kind.VIDEO]
    for spec in ModelSpec.objects.filter(enabled=True, kind__in=pictures).order_by(
        "key"
    ):
        try:
            queue = queue_for_model(spec.key)
        except (UnknownModel, NoQueueForModel):
            continue
        if usable(spec, queue, on_workers):
            runnable.append((spec, queue))
    live = {CPU_QUEUE, *live_queues()}
    choices = [
        ModelChoice(spec.key, _model_kind(spec), spec.quality, spec.speed)
        for spec, queue in runnable
        if queue in live
    ]
    if not any(c.key == "photo" for c in choices):
        spec = model_spec("photo")  # the built-in entry, made on first use
        choices.append(ModelChoice("photo", "photo", spec.quality, spec.speed))
    return choices


def _model_choices(requested: str) -> list[ModelChoice]:
    if not requested:
        return available_models()
    try:
        spec = model_spec(requested)
    except UnknownModel as exc:
        raise StoryboardError(str(exc)) from exc
    return [ModelChoice(spec.key, _model_kind(spec))]


# --- planning -----------------------------------------------------------------


def _llm_texts(
    shots: Sequence[ShotPlan], *, title: str, style_name: str, style_dna: str,
    character: CharacterRef | None,
) -> tuple[list[dict[str, str]] | None, dict[str, Any]]:  # fmt: skip
    """The LLM's concept, scene and narrative for each shot, from the cache
    when asked before; None (and why, for the user) when it is off or
    failed, so the templates stand."""
    conf = llm_settings()
    if not conf.enabled:
        return None, {"used": False, "note": "off: no LLM endpoint is configured"}
    briefs = [
        llm_stage.SceneBrief(
            index=s.index,
            start=s.context.start if s.context else 0.0,
            end=s.context.end if s.context else 0.0,
            section=s.section,
            energy=s.energy,
            features_character=s.features_character,
            script=" ".join(x for x in (s.script_heading, s.script_text) if x),
            draft={k: s.prompt.stages[k] for k in llm_stage.STAGE_KEYS}
            if s.prompt
            else {},
        )
        for s in shots
    ]
    who = character.label if character else ""
    messages = llm_stage.build_messages(
        title=title, style_name=style_name, style_dna=style_dna, character=who,
        briefs=briefs,
    )  # fmt: skip
    key = llm_stage.request_fingerprint(conf, messages)
    try:
        result, fresh = cache.remember(
            key,
            CacheEntry.Kind.PROMPTS,
            lambda: {
                "scenes": llm_stage.expand_scenes(
                    conf,
                    title=title,
                    style_name=style_name,
                    style_dna=style_dna,
                    character=who,
                    briefs=briefs,
                )  # fmt: skip
            },
            engine_version=conf.model,
        )
    except llm_stage.LLMError as exc:
        return None, {
            "used": False,
            "model": conf.model,
            "note": f"the LLM stage failed ({exc.reason}): {exc}; the template"
            " prompts are used",
        }
    return list(result["scenes"]), {
        "used": True,
        "model": conf.model,
        "cached": not fresh,
    }


def plan(
    project: Project,
    analysis: AudioAnalysis,
    images: Sequence[Asset],
    *,
    params: Mapping[str, Any],
    shows_character: Callable[[Asset], bool],
    character: Character | None,
) -> Storyboard:
    """Plan the project's storyboard afresh (replacing the one it had) for a
    render with ``params`` (preset, size, fps, format, duration, style,
    model); ``shows_character(photo)`` tells the character's photos."""
    output = output_of(params)
    style = get_style(params["style"])
    script_asset = project.script()
    script = None
    if script_asset is not None:
        try:
            script = read_script(script_asset)
        except ScriptError as exc:
            raise StoryboardError(f"{script_asset.original_name}: {exc}") from exc
    duration = min(float(params["duration"]), analysis.duration)
    # The same inputs plan the same storyboard (and find its scenes in the
    # cache) unless the user asks for another seed.
    seed = int(params.get("seed") or 0)
    ref = character_ref(character)
    models = _model_choices(params.get("model") or "")
    try:
        board = plan_storyboard(
            analysis.to_contract(),
            duration=duration,
            fps=output.fps,
            photos=[Photo(i, shows_character(img)) for i, img in enumerate(images)],
            style=style,
            script=script,
            models=models,
            preference=params.get("preference") or "quality",
            character=ref,
            title=project.title,
            seed=seed,
            width=output.width,
            height=output.height,
        )
    except PlanningError as exc:
        raise StoryboardError(str(exc)) from exc
    texts, llm_report = _llm_texts(
        board.shots, title=project.title, style_name=style.name,
        style_dna=style.dna, character=ref,
    )  # fmt: skip
    shots = list(board.shots)
    if texts is not None:
        kind = next((m.kind for m in models if m.key == board.model), "photo")
        shots = write_prompts(
            shots, fps=output.fps, style=style, character=ref, title=project.title,
            model_kind=kind, width=output.width, height=output.height, llm=texts,
        )  # fmt: skip
    notes = list(board.notes)
    if script is not None:
        notes += list(script.notes)
    if llm_report.get("note") and llm_report.get("model"):
        notes.append(llm_report["note"])
    return _save(
        project,
        fields={
            "style": style.key,
            "duration": board.duration,
            "preset": output.name,
            "width": output.width,
            "height": output.height,
            "fps": output.fps,
            "output_format": params.get("format") or project.output_format,
            "model": board.model,
            "seed": seed,
            "music_id": analysis_music(project, params),
            "music_sha256": analysis.sha256,
            "script_sha256": script_asset.sha256 if script_asset else "",
            "character": character,
            "notes": notes,
            "llm": llm_report,
        },
        shots=shots,
        images=images,
    )


def analysis_music(project: Project, params: Mapping[str, Any]) -> int | None:
    if params.get("music"):
        return int(params["music"])
    song = project.music()
    return song.pk if song else None


def character_ref(character: Character | None) -> CharacterRef | None:
    """How prompts name the video's character (planning and editing alike)."""
    if character is None:
        return None
    return CharacterRef(character.name, references=character.reference_count)


def _shot_row(plan: ShotPlan, images: Sequence[Asset]) -> Shot:
    prompt = plan.prompt
    return Shot(
        index=plan.index,
        start_frame=plan.start_frame,
        end_frame=plan.end_frame,
        beats=plan.beats,
        section=plan.section,
        energy=plan.energy,
        image=images[plan.photo],
        features_character=plan.features_character,
        move=plan.move,
        motion=plan.motion,
        transition=plan.transition,
        transition_frames=plan.transition_frames,
        reason=plan.reason[:200],
        grade=plan.grade or "",
        grade_intensity=plan.grade_intensity,
        model=plan.model,
        seed=plan.seed,
        script_heading=plan.script_heading[:300],
        script_text=plan.script_text,
        stages=dict(prompt.stages) if prompt else {},
        stage_sources=dict(prompt.sources) if prompt else {},
        prompt=prompt.prompt if prompt else "",
        negative_prompt=prompt.negative if prompt else "",
    )


def _save(
    project: Project,
    *,
    fields: dict[str, Any],
    shots: Sequence[ShotPlan],
    images: Sequence[Asset],
) -> Storyboard:
    with transaction.atomic():
        # Plans of one project one at a time (two renders side by side, a
        # double click): each replaces the storyboard whole.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        Storyboard.objects.filter(project=project).delete()
        board = Storyboard.objects.create(project=project, **fields)
        rows = [_shot_row(p, images) for p in shots]
        for row in rows:
            row.storyboard = board
        Shot.objects.bulk_create(rows)
    return board


def stale_reason(board: Storyboard, params: Mapping[str, Any]) -> str:
    """Why a saved storyboard cannot be rendered as it stands for a render
    with ``params`` ("" when it can): the song or the script changed, a
    scene lost its photo, or the render asks for another frame size, rate
    or length than the storyboard was planned for."""
    project = board.project
    song = project.music()
    if song is None or song.sha256 != board.music_sha256:
        return "the song changed since the storyboard was planned"
    script = project.script()
    if (script.sha256 if script else "") != board.script_sha256:
        return "the script changed since the storyboard was planned"
    if board.shots.filter(image__isnull=True).exists():
        return "a photo of the storyboard was removed"
    output = output_of(params)
    if (output.width, output.height, output.fps) != (
        board.width,
        board.height,
        board.fps,
    ):
        return (
            f"the storyboard is planned for {board.width}x{board.height} at"
            f" {board.fps} fps, not {output.width}x{output.height} at {output.fps}"
        )
    if abs(float(params["duration"]) - board.duration) > 0.5 / board.fps:
        return (
            f"the storyboard lasts {board.duration:g} s, not"
            f" {float(params['duration']):g} s"
        )
    return ""


def saved_for_render(project: Project, params: Mapping[str, Any]) -> Storyboard | None:
    """The storyboard a render of ``project`` uses as it stands: Advanced
    mode's, when there is one. StoryboardError when it is out of date."""
    if project.mode != Project.Mode.ADVANCED:
        return None
    board = Storyboard.objects.filter(project=project).first()
    if board is None:
        return None
    reason = stale_reason(board, params)
    if reason:
        raise StoryboardError(f"{reason}: plan the storyboard again before rendering")
    return board


def render_settings(board: Storyboard) -> dict[str, Any]:
    """The job params a render of this storyboard takes from it."""
    return {
        "preset": board.preset,
        "width": board.width,
        "height": board.height,
        "fps": board.fps,
        "format": board.output_format,
        "duration": board.duration,
        "style": board.style,
    }


def scene_fields(shot: Shot) -> dict[str, Any]:
    """A render's Scene fields from a shot (its character and focus come
    from the render's cast of its photo)."""
    return {
        "index": shot.index,
        "start_frame": shot.start_frame,
        "end_frame": shot.end_frame,
        "image": shot.image,
        "end_image": shot.end_image,
        "move": shot.move,
        "motion": shot.motion,
        "transition": shot.transition,
        "transition_frames": shot.transition_frames,
        "grade": shot.grade,
        "grade_intensity": shot.grade_intensity,
        "model": shot.model,
        "seed": shot.seed,
        "prompt": shot.prompt,
        "negative_prompt": shot.negative_prompt,
    }


def scene_for_shot(shot: Shot, fps: int, **extra: Any) -> Scene:
    fields = scene_fields(shot)
    return Scene(
        start=shot.start_frame / fps, end=shot.end_frame / fps, **fields, **extra
    )


# --- editing ------------------------------------------------------------------


EDITABLE = (
    "user_stages", "stages_off", "model", "seed", "image", "end_image", "motion",
    "beats", "move", "transition", "transition_beats", "grade", "grade_intensity",
    "features_character",
)  # fmt: skip


def _context(shot: Shot, board: Storyboard, count: int, previous: str) -> ShotContext:
    style = get_style(board.style)
    try:
        kind = _model_kind(model_spec(shot.model))
    except UnknownModel:
        kind = "photo"
    return shot_context(
        shot,
        count=count,
        fps=board.fps,
        style=style,
        title=board.project.title,
        character=character_ref(board.character),
        previous=previous,
        model_kind=kind,
        width=board.width,
        height=board.height,
    )


def recompose(shot: Shot, board: Storyboard) -> None:
    """Write the shot's prompt again from its stages: the user's text where
    given, the LLM's where it wrote one, the templates elsewhere."""
    count = board.shots.count()
    before = (
        board.shots.filter(index=shot.index - 1)
        .values_list("stages", flat=True)
        .first()
    )
    previous = (before or {}).get("concept", "")
    llm = {
        k: v
        for k, v in shot.stages.items()
        if shot.stage_sources.get(k) == "llm" and k in llm_stage.STAGE_KEYS
    }
    result = compose(
        _context(shot, board, count, previous),
        off=shot.stages_off,
        user=shot.user_stages,
        llm=llm,
    )
    shot.stages = dict(result.stages)
    shot.stage_sources = dict(result.sources)
    shot.prompt = result.prompt
    shot.negative_prompt = result.negative


def _known_stages(names: Iterable[str]) -> list[str]:
    """``names``, when each is a prompt stage; StoryboardError naming the others."""
    names = list(names)
    bad = sorted(set(names) - set(STAGES))
    if bad:
        raise StoryboardError(f"unknown prompt stages: {', '.join(bad)}")
    return names


def _photo(project: Project, value: Any, what: str) -> Asset | None:
    if value in (None, ""):
        return None
    pk = value.pk if isinstance(value, Asset) else value
    asset = project.assets.filter(pk=pk, kind=Asset.Kind.IMAGE).first()
    if asset is None:
        raise StoryboardError(f"{what} must be one of this project's photos")
    return asset


def _beat_seconds(board: Storyboard) -> tuple[float, list[float]]:
    analysis = AudioAnalysis.objects.filter(sha256=board.music_sha256).first()
    beats = sorted(analysis.beats) if analysis else []
    bpm = analysis.bpm if analysis and analysis.bpm > 0 else 120.0
    return 60.0 / bpm, beats


def _retime(
    board: Storyboard,
    shot: Shot,
    nxt: Shot | None,
    beats: float,
    timing: tuple[float, list[float]],
) -> Shot:
    """Give ``shot`` a length of ``beats`` beats, ending on the beat nearest
    that; the next scene starts there (the video keeps its length). The
    next scene, changed too, is returned."""
    if nxt is None:
        raise StoryboardError(
            "the last scene ends with the video: change the length of the scene"
            " before it, or the render's duration"
        )
    if not 0 < beats <= 256:
        raise StoryboardError("a scene lasts more than 0 and at most 256 beats")
    beat_s, grid = timing
    fps = board.fps
    target = shot.start_frame / fps + beats * beat_s
    if grid:
        target = min(grid, key=lambda t: abs(t - target))
    end = round(target * fps)
    shortest = round(MIN_SCENE_FRAMES_S * fps)
    if end - shot.start_frame < shortest or nxt.end_frame - end < shortest:
        raise StoryboardError(
            f"scene {shot.index} and scene {nxt.index} must each keep at least"
            f" {MIN_SCENE_FRAMES_S:g} s: choose fewer beats"
        )
    shot.end_frame = end
    nxt.start_frame = end
    for s in (shot, nxt):
        s.beats = round((s.end_frame - s.start_frame) / fps / beat_s, 2)
    return nxt


def _cap_transition(board: Storyboard, shot: Shot, nxt: Shot | None) -> None:
    """A transition is at most half of either scene it joins."""
    if nxt is None:
        shot.transition, shot.transition_frames = "cut", 0
        return
    longest = min(shot.end_frame - shot.start_frame, nxt.end_frame - nxt.start_frame)
    cap = min(longest // 2, int(MAX_DURATION * board.fps))
    if shot.transition == "cut":
        shot.transition_frames = 0
    else:
        shot.transition_frames = max(1, min(shot.transition_frames, cap))


def edit_shot(shot: Shot, changes: Mapping[str, Any]) -> list[Shot]:
    """Apply the owner's changes to one scene (``EDITABLE`` keys); the scenes
    changed (the next one too when the length changed). The project turns
    to Advanced mode: its storyboard now stands as edited."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise StoryboardError(f"these cannot be edited: {', '.join(unknown)}")
    with transaction.atomic():
        # One edit of a storyboard at a time, on rows read under the lock,
        # so two edits of neighbouring lengths cannot leave a gap.
        board = (
            Storyboard.objects.select_for_update()
            .select_related("project")
            .filter(pk=shot.storyboard_id)
            .first()
        )
        if board is None:
            raise StoryboardError(
                "the storyboard was planned again meanwhile: open it again"
            )
        near = {
            s.index: s
            for s in board.shots.filter(
                index__in=[shot.index - 1, shot.index, shot.index + 1, shot.index + 2]
            )
        }
        return _edit(board, near, near[shot.index], changes)


def _edit(
    board: Storyboard, near: dict[int, Shot], shot: Shot, changes: Mapping[str, Any]
) -> list[Shot]:
    project = board.project
    before = near.get(shot.index - 1)
    nxt = near.get(shot.index + 1)
    changed = [shot]
    if "model" in changes:
        try:
            shot.model = model_spec(str(changes["model"])).key
        except UnknownModel as exc:
            raise StoryboardError(str(exc)) from exc
    if "seed" in changes:
        seed = int(changes["seed"])
        if not 0 <= seed <= MAX_SEED:
            raise StoryboardError(f"a seed is a whole number from 0 to {MAX_SEED}")
        shot.seed = seed
    if "image" in changes:
        image = _photo(project, changes["image"], "the photo")
        if image is None:
            raise StoryboardError("a scene needs a photo")
        shot.image = image
    if "end_image" in changes:
        shot.end_image = _photo(project, changes["end_image"], "the end keyframe")
    if shot.end_image is not None:
        spec = ModelSpec.objects.filter(key=shot.model).first()
        if (
            spec is None
            or spec.kind != ModelSpec.Kind.VIDEO
            or not spec.params.get("keyframes")
        ):
            raise StoryboardError(
                f"the model {shot.model!r} makes no video between two keyframes:"
                " choose a video model that takes an end keyframe (LTX-Video),"
                " or no end keyframe"
            )
    if "motion" in changes:
        motion = float(changes["motion"])
        if not 0.0 <= motion <= 1.0:
            raise StoryboardError("motion strength is from 0 (still) to 1")
        shot.motion = motion
    if "move" in changes:
        if changes["move"] not in MOVES:
            raise StoryboardError(
                f"unknown camera move; choose one of: {', '.join(MOVES)}"
            )
        shot.move = changes["move"]
    if "grade" in changes:
        grade = changes["grade"] or ""
        if grade and grade not in GRADES:
            raise StoryboardError(f"unknown grade; choose one of: {', '.join(GRADES)}")
        shot.grade = grade
    if "grade_intensity" in changes:
        value = float(changes["grade_intensity"])
        if not 0.0 <= value <= 1.0:
            raise StoryboardError("grade intensity is from 0 to 1")
        shot.grade_intensity = value
    if "features_character" in changes:
        shot.features_character = bool(changes["features_character"])
    if "stages_off" in changes:
        off = _known_stages(changes["stages_off"] or [])
        shot.stages_off = [s for s in STAGES if s in off]
    if "user_stages" in changes:
        texts = dict(changes["user_stages"] or {})
        _known_stages(texts)
        shot.user_stages = {k: " ".join(str(v).split()) for k, v in texts.items() if v}
    # The song's beat length and grid, read at most once, by the edits
    # that need it.
    timing = functools.cache(functools.partial(_beat_seconds, board))
    retimed = "beats" in changes and float(changes["beats"]) != shot.beats
    if retimed:
        changed.append(_retime(board, shot, nxt, float(changes["beats"]), timing()))
    if "transition" in changes:
        if changes["transition"] not in TRANSITIONS:
            raise StoryboardError(
                f"unknown transition; choose one of: {', '.join(TRANSITIONS)}"
            )
        shot.transition = changes["transition"]
        if shot.transition != "cut" and not shot.transition_frames:
            shot.transition_frames = round(timing()[0] * board.fps)
    if "transition_beats" in changes:
        shot.transition_frames = round(
            float(changes["transition_beats"]) * timing()[0] * board.fps
        )
    _cap_transition(board, shot, nxt)
    capped: list[Shot] = []
    if retimed and nxt is not None:
        # Both joins around the moved cut's scenes must still fit them.
        _cap_transition(board, nxt, near.get(nxt.index + 1))
        if before is not None:
            frames = before.transition_frames
            _cap_transition(board, before, shot)
            if before.transition_frames != frames:
                capped.append(before)
    for s in changed:
        recompose(s, board)
        s.edited = True
        s.save()
    for s in capped:  # only its join changed: its picture is the same
        s.save(update_fields=["transition_frames"])
    Storyboard.objects.filter(pk=board.pk).update(version=F("version") + 1)
    if project.mode != Project.Mode.ADVANCED:
        Project.objects.filter(pk=project.pk).update(mode=Project.Mode.ADVANCED)
    return changed


def rendered(project_id: int, version: int | None) -> None:
    """A render of storyboard ``version`` finished: its edits are in a
    video, so no scene waits any more (unless it was edited since)."""
    if version is None:
        return
    Shot.objects.filter(
        storyboard__project_id=project_id, storyboard__version=version, edited=True
    ).update(edited=False)
