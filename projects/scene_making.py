"""Making one scene: its engine's output, stored under its fingerprint, and
the consistency gate that checks it shows its character.

``produce`` runs the scene's engine for one seed (or takes the output from
the cache); ``make_checked`` runs the gate on it and, while the scene fails,
makes it again with new seeds, up to ``STUDIO_CONSISTENCY_TRIES`` attempts,
keeping the best attempt. A scene that never passes is flagged for its
owner's review. Nothing here writes the Scene row; the task does, once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage

from characters.consistency import check_source, check_version
from characters.models import Character
from media_jobs import cache, records
from media_jobs.files import delete_file, local_file, scratch_dir, store_new_file
from media_jobs.models import CacheEntry, ModelSpec
from workers.assembly.presets import OutputPreset
from workers.faces.frames import FrameSource, StillFrames, VideoFrames
from workers.scenes import SceneRequest

from .models import Scene
from .scene_engines import engine_for, model_ref
from .storyboards import move_strength

SCENE_PREVIEW = "preview.jpg"

ProgressFn = Callable[[float, str], None]


def scene_fingerprint(
    scene: Scene, spec: ModelSpec, preset: OutputPreset, seed: int | None = None
) -> str:
    """Everything that decides the scene's own output (its joins aside):
    the photo's content, the frame, the move and its focus, the model
    (``spec``), its revision and params, the engine and its version, the
    seed."""
    engine = engine_for(spec)
    return cache.fingerprint(
        {
            "kind": "scene",
            "engine": engine.name,
            "engine_version": engine.version,
            "model": spec.key,
            "model_revision": spec.revision,
            "image": scene.image.sha256,
            "size": [preset.width, preset.height],
            "fps": preset.fps,
            "frames": scene.frames,
            "move": scene.move,
            "focus": [round(scene.focus_x, 4), round(scene.focus_y, 4)],
            "seed": scene.seed if seed is None else seed,
            # What the storyboard asks of the model.
            "prompt": scene.prompt,
            "negative_prompt": scene.negative_prompt,
            "motion": round(scene.motion, 4),
            "end_image": scene.end_image.sha256 if scene.end_image else "",
            **_model_settings(spec),
        }
    )


def _model_settings(spec: ModelSpec) -> dict[str, Any]:
    """The registry params the model runs with (steps, size, denoise ...) and
    a single-file model's base and its revision: an admin edit of either
    makes the model's scenes again. Models without params (the photo engine)
    add nothing, so their fingerprints stay as they were."""
    if not spec.params:
        return {}
    found: dict[str, Any] = {"model_params": spec.params}
    base = spec.params.get("base")
    if base:
        revision = (
            ModelSpec.objects.filter(key=base)
            .values_list("revision", flat=True)
            .first()
        )
        found["model_base"] = [base, revision or ""]
    return found


# A scene source with one of these suffixes is a picture the renderer moves
# (a still an image model painted); any other is a clip it plays.
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


def is_picture(name: str) -> bool:
    return Path(name).suffix.lower() in PICTURE_SUFFIXES


@dataclass(frozen=True)
class Produced:
    """One attempt's output: stored names (``clip`` empty: the photo is the
    scene's source, moved by the renderer)."""

    seed: int
    fingerprint: str
    clip: str
    thumbnail: str
    cached: bool
    seconds: float


@dataclass
class Checked:
    """The scene as it will be saved: the attempt kept and the gate's word."""

    produced: Produced
    review: str = Scene.Review.NONE
    score: float | None = None
    gate: dict[str, Any] = field(default_factory=dict)
    tries: int = 0


def produce(
    scene: Scene,
    spec: ModelSpec,
    preset: OutputPreset,
    seed: int,
    on_progress: ProgressFn,
) -> Produced:
    """The scene's output for ``seed``: from the cache, or made by its engine
    and stored under its fingerprint."""
    fingerprint = scene_fingerprint(scene, spec, preset, seed)
    entry = cache.lookup(
        fingerprint, CacheEntry.Kind.SCENE, exists=default_storage.exists
    )
    if entry is not None:
        return Produced(
            seed,
            fingerprint,
            entry.result.get("clip", ""),
            entry.result.get("thumbnail", ""),
            cached=True,
            seconds=0.0,
        )
    engine = engine_for(spec)
    started = time.monotonic()
    base = f"scenes/{fingerprint[:2]}/{fingerprint}"
    stored: list[str] = []
    created: list[str] = []  # what this call wrote: the rest may be shared
    with ExitStack() as stack:
        tmp = stack.enter_context(scratch_dir(f"scene-{scene.pk}"))
        image = stack.enter_context(local_file(scene.image.file.name))
        end_image = (
            stack.enter_context(local_file(scene.end_image.file.name))
            if scene.end_image
            else None
        )
        request = SceneRequest(
            index=scene.index,
            image=image,
            out_dir=tmp,
            width=preset.width,
            height=preset.height,
            fps=preset.fps,
            frames=scene.frames,
            move=scene.move,
            focus=scene.focus,
            seed=seed,
            prompt=scene.prompt,
            negative_prompt=scene.negative_prompt,
            strength=move_strength(scene.motion),
            end_image=end_image,
            model=model_ref(spec),
            on_progress=on_progress,
        )
        output = engine.render(request)
        source = output.clip or output.still

        def keep(local: Path, name: str) -> None:
            saved, new = store_new_file(local, name)
            stored.append(saved)
            if new:
                created.append(saved)

        try:
            if output.preview is not None:
                keep(output.preview, f"{base}/{SCENE_PREVIEW}")
            if output.clip is not None:
                keep(output.clip, f"{base}/clip{output.clip.suffix}")
            elif output.still is not None:
                keep(output.still, f"{base}/still{output.still.suffix}")
        except BaseException:
            # Content-addressed names: a file that was already there is
            # another scene's or cache entry's as well, and stays.
            for name in created:
                delete_file(name)
            raise
    seconds = time.monotonic() - started
    preview = stored[0] if output.preview is not None else ""
    # The scene's source: a clip to play, or a still to move (is_still).
    clip = stored[-1] if source is not None else ""
    cache.store(
        fingerprint,
        CacheEntry.Kind.SCENE,
        files=stored,
        result={"clip": clip, "thumbnail": preview},
        model_key=spec.key,
        model_revision=spec.revision,
        engine_version=engine.version,
        size=sum(default_storage.size(name) for name in stored),
        seconds=seconds,
    )
    return Produced(seed, fingerprint, clip, preview, cached=False, seconds=seconds)


def next_seed(seed: int, attempt: int) -> int:
    """The seed of attempt ``attempt`` (2, 3, …) after ``seed``: the same
    every time, so a task delivered again repeats (and finds cached) the
    attempts it already made."""
    digest = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _frames(
    scene: Scene, produced: Produced, preset: OutputPreset, stack: ExitStack
) -> FrameSource:
    """What the viewer will see of the scene: its clip, or its photo (or the
    still its model painted) under its camera move."""
    if produced.clip and not is_picture(produced.clip):
        path = stack.enter_context(local_file(produced.clip))
        source: FrameSource = VideoFrames(path)
    else:
        path = stack.enter_context(local_file(produced.clip or scene.image.file.name))
        source = StillFrames(
            path,
            (preset.width, preset.height),
            scene.frames,
            preset.fps,
            scene.move,
            scene.focus,
            move_strength(scene.motion),
        )
    stack.callback(source.close)
    return source


def check(
    scene: Scene, produced: Produced, character: Character, preset: OutputPreset
) -> dict[str, Any]:
    """The gate's findings on one attempt, cached by the attempt's
    fingerprint, the character's identity and the gate's settings."""
    key = cache.fingerprint(
        {
            "kind": "check",
            "scene": produced.fingerprint,
            "identity": character.identity_key,
            "gate": check_version(character),
        }
    )

    def run_gate() -> dict[str, Any]:
        with ExitStack() as stack:
            source = _frames(scene, produced, preset, stack)
            return check_source(character, source).to_dict()

    found, _ = cache.remember(
        key, CacheEntry.Kind.CHECK, run_gate, engine_version=character.provider_version
    )
    return found


def _score(found: dict[str, Any]) -> float:
    return found["score"] if found["score"] is not None else -1.0


CARRIED = (Scene.Review.PASSED, Scene.Review.APPROVED, Scene.Review.FLAGGED)


def make_checked(
    scene: Scene,
    spec: ModelSpec,
    preset: OutputPreset,
    character: Character | None,
    on_progress: ProgressFn,
    *,
    seeded: bool,
) -> Checked:
    """The scene made and, when it shows a character, gated: made again with
    new seeds while it fails (``seeded``: a new seed changes the output),
    the best attempt kept and flagged when none passes.

    A scene that comes with a verdict (a render made from an earlier one
    copies its scenes' verdicts) keeps it while its output is the one the
    verdict was about: an approval stays, and nothing is checked or tried
    again."""
    produced = produce(scene, spec, preset, scene.seed, on_progress)
    if scene.review in CARRIED and produced.fingerprint == scene.fingerprint:
        return Checked(
            produced, scene.review, scene.consistency, scene.gate, scene.tries
        )
    if character is None or not character.is_ready:
        return Checked(produced)
    tries = max(1, settings.STUDIO_CONSISTENCY_TRIES)
    attempts: list[dict[str, Any]] = []
    best: tuple[Produced, dict[str, Any]] | None = None
    note = ""
    for attempt in range(1, tries + 1):
        try:
            if attempt > 1:
                on_progress(0.0, f"scene {scene.index}: attempt {attempt} of {tries}")
                produced = produce(
                    scene, spec, preset, next_seed(scene.seed, attempt), on_progress
                )
            on_progress(0.95, f"scene {scene.index}: checking {character.name}")
            found = check(scene, produced, character, preset)
        except SoftTimeLimitExceeded:
            # Out of time after at least one checked attempt: keep the best
            # one for the review rather than lose them all. A cancel (the
            # same signal) stops the task as usual.
            if best is None or not records.job_is_running(scene.job_id):
                raise
            note = f"stopped after {attempt - 1} attempts: the time limit came"
            break
        attempts.append(
            {"seed": produced.seed, "score": found["score"], "passed": found["passed"]}
        )
        if best is None or found["passed"] or _score(found) > _score(best[1]):
            best = (produced, found)
        if found["passed"] or not seeded:
            break
    assert best is not None
    kept, found = best
    gate = {**found, "attempts": attempts, "character": character.pk}
    if note:
        gate["note"] = note
    return Checked(
        kept,
        review=Scene.Review.PASSED if found["passed"] else Scene.Review.FLAGGED,
        score=found["score"],
        gate=gate,
        tries=len(attempts),
    )
