"""The storyboard planner: a song's analysis, the user's photos, a style and
an optional script become the scenes of a video, each with its timing,
photo, camera move, transition, grade, model, seed and prompt.

    plan_storyboard(analysis, duration=..., fps=..., photos=[...], style=...)

Timing is the beat-sync planner's (``workers.assembly.beatsync``): cuts on
the frame nearest a downbeat, spaced by the music's energy, a cut at every
section change, the joins picked from the style's transitions. A script's
scene changes are cuts too: at their timestamps, or, for a script without
times, at equal shares of the video; each lands on the nearest downbeat.

Photos: every photo is shown. The character's photos go to the scenes the
character is in, the others (places, objects) to the rest; when there are
more photos than scenes, the longest scenes are split on a beat until every
photo has one. A photo that comes round again gets another camera move.

The result is plain values; ``prompts.compose`` writes each scene's prompt
from its ``context``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from workers.assembly.beatsync import energy_level, plan_beat_sync

from .prompts import CharacterRef, PromptResult, ShotContext, compose
from .scripts import Script, ScriptScene
from .styles import StylePreset, join_preferences

MOTION_BY_ENERGY = {"calm": 0.7, "mid": 1.0, "high": 1.3}
SPLIT_MIN_S = 1.0  # a scene split to fit a photo is at least this long


class PlanningError(ValueError):
    """The inputs cannot make a storyboard (no photos, no beats, too short)."""


@dataclass(frozen=True)
class Photo:
    """One of the user's photos, by its position in the caller's list."""

    index: int
    character: bool = True  # shows the character


@dataclass(frozen=True)
class ModelChoice:
    """A model the planner may give scenes: installed, enabled, and served
    by a live queue. Higher ``quality`` looks better, higher ``speed`` is
    faster."""

    key: str
    kind: str = "photo"  # photo | image | video
    quality: int = 0
    speed: int = 0


@dataclass(frozen=True)
class ShotPlan:
    index: int
    start_frame: int
    end_frame: int
    beats: float  # the scene's length in beats
    section: str
    energy: str  # calm | mid | high
    photo: int  # index into the caller's photos
    features_character: bool
    move: str
    motion: float  # 0..1
    transition: str  # into the next scene
    transition_frames: int
    reason: str  # why the join was chosen
    grade: str | None
    grade_intensity: float
    model: str
    seed: int
    script_index: int | None = None  # which script scene it shows
    script_heading: str = ""
    script_text: str = ""
    context: ShotContext | None = None
    prompt: PromptResult | None = None

    def start(self, fps: int) -> float:
        return self.start_frame / fps

    def end(self, fps: int) -> float:
        return self.end_frame / fps


@dataclass(frozen=True)
class Storyboard:
    fps: int
    frames: int
    style: str
    model: str
    shots: tuple[ShotPlan, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def shot_seed(base: int, index: int) -> int:
    """A scene's seed: fixed by the storyboard's seed and its position; the
    first scene's is the storyboard's own."""
    if index == 0:
        return base
    digest = hashlib.sha256(f"{base}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def choose_model(models: Sequence[ModelChoice], preference: str = "quality") -> str:
    """The best model for ``preference`` (quality or speed); ``photo`` when
    none is offered."""
    if preference not in ("quality", "speed"):
        raise PlanningError(f"unknown preference {preference!r}: quality or speed")
    if not models:
        return "photo"

    def rank(m: ModelChoice) -> tuple[int, int, str]:
        first, second = (
            (m.quality, m.speed) if preference == "quality" else (m.speed, m.quality)
        )
        return (first, second, m.key)

    return max(models, key=rank).key


def _script_anchors(
    script: Script | None, duration: float
) -> tuple[list[tuple[float, str]], list[float], list[str]]:
    """Cut times the script asks for, the start of each script scene's span
    (for finding a shot's script scene), and notes."""
    if script is None or not script.scenes:
        return [], [], []
    notes: list[str] = []
    scenes = script.scenes
    if script.timed():
        starts: list[float] = []
        last = 0.0
        for scene in scenes:
            # An untimed scene between timed ones starts where the last did.
            last = scene.start if scene.start is not None else last
            starts.append(last)
        beyond = [i for i, t in enumerate(starts) if t >= duration]
        if beyond:
            notes.append(
                f"{len(beyond)} script scene(s) start after the video's"
                f" {duration:.1f} s and are not shown"
            )
    else:
        starts = [duration * k / len(scenes) for k in range(len(scenes))]
    anchors = [
        (t, _scene_label(i, scenes[i]))
        for i, t in enumerate(starts)
        if 0 < t < duration and (i == 0 or t > starts[i - 1])
    ]
    return anchors, starts, notes


def _scene_label(i: int, scene: ScriptScene) -> str:
    return f"script scene {i + 1}" + (f": {scene.heading}" if scene.heading else "")


def _split_to_fit(
    bounds: list[int], joins: list[tuple[str, int, str]], beats: Sequence[float],
    fps: int, want: int,
) -> list[str]:  # fmt: skip
    """Split the longest scenes on the beat nearest their middle until there
    are ``want`` scenes (in place); notes when the beats run out."""
    notes: list[str] = []
    while len(bounds) - 1 < want:
        order = sorted(
            range(len(bounds) - 1), key=lambda k: bounds[k] - bounds[k + 1]
        )  # longest first
        for k in order:
            a, b = bounds[k], bounds[k + 1]
            inside = [
                f
                for f in (round(t * fps) for t in beats)
                if a + SPLIT_MIN_S * fps <= f <= b - SPLIT_MIN_S * fps
            ]
            if inside:
                middle = min(inside, key=lambda f: abs(f - (a + b) / 2))
                bounds.insert(k + 1, middle)
                joins.insert(k, ("cut", 0, "split on a beat so every photo is shown"))
                break
        else:
            notes.append(
                f"{want} photos need {want} scenes, but the beats allow"
                f" {len(bounds) - 1}: some photos are not shown"
            )
            break
    return notes


def _character_flags(
    count: int, photos: Sequence[Photo], script_flags: list[bool | None]
) -> tuple[list[bool], list[str]]:
    """Which scenes show the character. The script decides where it says;
    elsewhere scenes show the character, except an even spread of scenes
    for the photos without them. Then, so every photo is shown, each group
    gets at least as many scenes as it has photos."""
    with_char = sum(p.character for p in photos)
    without = len(photos) - with_char
    notes: list[str] = []
    if with_char == 0:
        return [False] * count, notes
    if without == 0 and all(f is None for f in script_flags):
        return [True] * count, notes
    flags = [f if f is not None else True for f in script_flags]
    if all(f is None for f in script_flags):
        others = min(max(without, round(count * without / len(photos))), count - 1)
        for k in range(others):
            flags[min(count - 1, int((k + 0.5) * count / others))] = False
    # Make room for every photo of each group.
    for group, need in ((False, without), (True, with_char)):
        have = sum(1 for f in flags if f == group)
        spare = sum(1 for f in flags if f != group) - (
            with_char if not group else without
        )
        flip = min(max(0, need - have), max(0, spare))
        if flip:
            candidates = [k for k, f in enumerate(flags) if f != group]
            step = len(candidates) / flip
            for j in range(flip):
                flags[candidates[int(j * step)]] = group
            notes.append(
                f"{flip} scene(s) changed to {'show' if group else 'not show'}"
                " the character so every photo is used"
            )
    return flags, notes


def _assign_photos(flags: Sequence[bool], photos: Sequence[Photo]) -> list[int]:
    """Each scene's photo: the group's photos in turn; a group without
    photos borrows the other's."""
    groups = {
        True: [p.index for p in photos if p.character],
        False: [p.index for p in photos if not p.character],
    }
    seen = {True: 0, False: 0}
    chosen = []
    for flag in flags:
        pool = groups[flag] or groups[not flag]
        chosen.append(pool[seen[flag] % len(pool)])
        seen[flag] += 1
    return chosen


def _next_move(
    moves: Sequence[str], start: int, used: Sequence[str], previous: str
) -> str:
    """The style's next move from ``start``: one this photo has not had
    and the previous scene did not use; failing that, one the previous
    scene did not use (a photo shown more often than there are moves)."""
    order = [moves[(start + i) % len(moves)] for i in range(len(moves))]
    recent = set(used[-(len(moves) - 1) :]) if len(moves) > 1 else set()
    for move in order:
        if move != previous and move not in recent:
            return move
    return next((m for m in order if m != previous), order[0])


def _landed(analysis: Mapping, starts: Sequence[float], fps: int) -> list[float]:
    """Script scene starts moved onto the beat grid as beatsync moves its
    anchors: the nearest downbeat (beat, without a bar grid), whole frames."""
    downbeats = sorted(float(b) for b in analysis.get("downbeats") or [])
    grid = (
        downbeats
        if len(downbeats) >= 2
        else sorted(float(b) for b in analysis.get("beats") or [])
    )
    if not grid:
        return list(starts)
    return [
        0.0 if t <= 0 else round(min(grid, key=lambda c: abs(c - t)) * fps) / fps
        for t in starts
    ]


def _script_for(starts: Sequence[float], time: float) -> int | None:
    found = None
    for i, start in enumerate(starts):
        if start <= time + 1e-6:
            found = i
    return found


def plan_storyboard(
    analysis: Mapping,
    *,
    duration: float,
    fps: int,
    photos: Sequence[Photo],
    style: StylePreset,
    script: Script | None = None,
    models: Sequence[ModelChoice] = (),
    preference: str = "quality",
    character: CharacterRef | None = None,
    title: str = "",
    seed: int = 0,
    width: int = 1920,
    height: int = 1080,
    min_scene_s: float = 2.0,
) -> Storyboard:
    """The storyboard of a ``duration``-second video at ``fps``; its scenes
    tile frames [0, round(duration * fps)) exactly. ``analysis`` is the
    ``analyze_audio --json`` contract."""
    if not photos:
        raise PlanningError("upload at least one photo to make a video")
    total = round(duration * fps)
    if total < 1:
        raise PlanningError("the video would be shorter than one frame")
    anchors, script_starts, notes = _script_anchors(script, total / fps)
    try:
        cuts = plan_beat_sync(
            analysis,
            duration=total / fps,
            fps=fps,
            min_scene_s=min_scene_s,
            palette=style.transitions,
            preferences=join_preferences(),
            anchors=anchors,
        )
    except ValueError as exc:
        raise PlanningError(str(exc)) from exc
    bounds = [0, *(c.frame for c in cuts), total]
    joins = [(c.kind, round(c.duration * fps), c.reason) for c in cuts]
    beats = sorted(float(b) for b in analysis.get("beats") or [])
    notes += _split_to_fit(bounds, joins, beats, fps, len(photos))
    count = len(bounds) - 1
    joins.append(("cut", 0, ""))

    starts = [bounds[k] / fps for k in range(count)]
    # A script scene starts where its cut landed (on a downbeat), not at
    # its own time, so the shots after the cut carry it.
    landed = _landed(analysis, script_starts, fps)
    script_index = [_script_for(landed, t) for t in starts]
    script_flags: list[bool | None] = [None] * count
    if script is not None and script.characters:
        for k, i in enumerate(script_index):
            if i is not None:
                script_flags[k] = bool(script.scenes[i].characters)
    flags, flag_notes = _character_flags(count, photos, script_flags)
    notes += flag_notes
    assigned = _assign_photos(flags, photos)

    bpm = float(analysis.get("bpm") or 0.0) or 120.0
    sections = list(analysis.get("sections") or [])
    model = choose_model(models, preference)
    kind = next((m.kind for m in models if m.key == model), "photo")
    moves = style.moves
    used: dict[int, list[str]] = {p: [] for p in assigned}
    shots: list[ShotPlan] = []
    for k in range(count):
        a, b = bounds[k], bounds[k + 1]
        t0, t1 = a / fps, b / fps
        middle = (t0 + t1) / 2
        section = next(
            (str(s.get("label", "")) for s in sections
             if float(s["start"]) <= middle < float(s["end"])),
            "",
        )  # fmt: skip
        energy = energy_level(analysis, t0, t1)
        # Neighbours differ, and a photo that comes round again gets the
        # next move along.
        move = _next_move(
            moves, assigned[k] + len(used[assigned[k]]), used[assigned[k]],
            shots[-1].move if shots else "",
        )  # fmt: skip
        used[assigned[k]].append(move)
        motion = min(1.0, style.motion * MOTION_BY_ENERGY[energy])
        i = script_index[k]
        scene = script.scenes[i] if script is not None and i is not None else None
        transition, frames, reason = joins[k]
        shots.append(
            ShotPlan(
                index=k,
                start_frame=a,
                end_frame=b,
                beats=round((t1 - t0) * bpm / 60.0, 2),
                section=section,
                energy=energy,
                photo=assigned[k],
                features_character=flags[k],
                move=move,
                motion=round(motion, 3),
                transition=transition,
                transition_frames=frames,
                reason=reason,
                grade=style.grade,
                grade_intensity=style.grade_intensity,
                model=model,
                seed=shot_seed(seed, k),
                script_index=i,
                script_heading=scene.heading if scene else "",
                script_text=scene.text if scene else "",
            )
        )
    shots = write_prompts(
        shots,
        fps=fps,
        style=style,
        character=character,
        title=title,
        model_kind=kind,
        width=width,
        height=height,
    )
    return Storyboard(
        fps=fps,
        frames=total,
        style=style.key,
        model=model,
        shots=tuple(shots),
        notes=tuple(notes),
    )


class ShotLike(Protocol):
    """What the prompt stages read of a scene: a plan, or a stored shot
    (read-only, so frozen plans qualify)."""

    @property
    def index(self) -> int: ...

    @property
    def start_frame(self) -> int: ...

    @property
    def end_frame(self) -> int: ...

    @property
    def section(self) -> str: ...

    @property
    def energy(self) -> str: ...

    @property
    def move(self) -> str: ...

    @property
    def motion(self) -> float: ...

    @property
    def seed(self) -> int: ...

    @property
    def features_character(self) -> bool: ...

    @property
    def script_heading(self) -> str: ...

    @property
    def script_text(self) -> str: ...


def shot_context(
    shot: ShotLike,
    *,
    count: int,
    fps: int,
    style: StylePreset,
    title: str,
    character: CharacterRef | None,
    previous: str,
    model_kind: str,
    width: int,
    height: int,
) -> ShotContext:
    """The prompt stages' view of one scene of ``count``."""
    return ShotContext(
        index=shot.index,
        count=count,
        start=shot.start_frame / fps,
        end=shot.end_frame / fps,
        section=shot.section,
        energy=shot.energy,
        move=shot.move,
        motion=shot.motion,
        style=style,
        seed=shot.seed,
        title=title,
        features_character=shot.features_character,
        character=character,
        script_heading=shot.script_heading,
        script_text=shot.script_text,
        previous=previous,
        model_kind=model_kind,
        width=width,
        height=height,
        fps=fps,
    )


def write_prompts(
    shots: Sequence[ShotPlan],
    *,
    fps: int,
    style: StylePreset,
    character: CharacterRef | None,
    title: str = "",
    model_kind: str = "photo",
    width: int = 1920,
    height: int = 1080,
    llm: Sequence[Mapping[str, str]] | None = None,
) -> list[ShotPlan]:
    """Each shot with its context and its prompt from the template stages
    (or the LLM's text for its stages, one mapping per shot)."""
    out: list[ShotPlan] = []
    previous = ""
    for k, shot in enumerate(shots):
        context = shot_context(
            shot,
            count=len(shots),
            fps=fps,
            style=style,
            title=title,
            character=character,
            previous=previous,
            model_kind=model_kind,
            width=width,
            height=height,
        )
        prompt = compose(context, llm=llm[k] if llm is not None else None)
        previous = prompt.stages["concept"]
        out.append(replace(shot, context=context, prompt=prompt))
    return out
