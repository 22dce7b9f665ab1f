"""Beat-synced cuts and transitions: where each cut goes and how it joins.

    plan_beat_sync(analysis, duration=..., fps=...) -> list[PlannedCut]

``analysis`` is ``AudioAnalysisResult.to_dict()`` (beats, downbeats, bpm,
meter, sections, energy {hop_s, values in LUFS}).

Where the cuts go:

* Every section change is a cut, moved onto the downbeat nearest the
  section's start (onto the nearest beat when there is no bar grid).
* Between section changes, cuts fall on downbeats (beats without a bar grid)
  spaced by the local energy: ``high`` cuts every bar, ``mid`` every 2 bars,
  ``calm`` every 4 bars; never two cuts closer than ``min_scene_s``, and the
  last scene is at least half of ``min_scene_s`` long.
* A cut is at the frame nearest its beat, ``round(beat * fps)``, so
  ``|frame / fps - beat| <= 0.5 / fps``. A video shorter than ``min_scene_s``
  is a single scene (no cuts).

Local energy is the mean of ``energy.values`` over one bar either side of the
cut. It is compared with the song's own spread (quantiles over finite values):
``high`` when at least halfway from the median to the 90th percentile,
``calm`` when at most halfway from the 10th percentile to the median, ``mid``
between. A song whose 10th-90th percentile spread is under ``FLAT_SPREAD_LU``
has no contrast to follow: every cut is ``mid``.

How each cut joins (``kind`` is a ``TRANSITIONS`` name):

* Section change into a ``high`` (loud) passage: a short punchy transition
  (``flash``/``whip_pan``, half a beat, at most ``PUNCH_MAX_S``), ``flash`` and
  ``whip_pan`` taking turns from one such section change to the next.
* Section change into a calmer section: ``dip_to_black`` over two beats.
* Other section changes: ``crossfade`` over one beat.
* Inside a section: ``high`` -> ``cut`` (duration 0), ``mid`` -> ``crossfade``
  over one beat, ``calm`` -> ``dissolve`` over two beats.

A transition of duration ``d`` is centred on its cut: the renderer overlaps
``d / 2`` before and ``d / 2`` after the cut frame. ``d`` is rounded to a whole
number of frames, at most ``MAX_DURATION`` and at most half of the shorter of the two
scenes it joins; one shorter than ``MIN_FRAMES`` frames becomes a ``cut``.

``palette`` restricts the kinds to a style's transitions: each join takes the
first of its preferred kinds that is in the palette, falling back to ``cut``
(hard joins) or ``crossfade`` (soft joins). The plan is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from workers.assembly.transitions import MAX_DURATION, TRANSITIONS

FLAT_SPREAD_LU = 3.0  # below this 10th-90th percentile spread, no contrast
PUNCH_MAX_S = 0.35  # longest punchy transition (seconds)
MIN_FRAMES = 2  # a shorter transition is a cut
BARS_PER_SCENE = {"high": 1, "mid": 2, "calm": 4}
_RANK = {"calm": 0, "mid": 1, "high": 2}

# Preferred kinds for each kind of join, best first. The storyboard passes
# its own table (workers/storyboard/transitions.yaml) as ``preferences``.
JOIN_KINDS = ("punchy", "punchy_alt", "calmer", "soft_section", "hard", "mid", "calm")
DEFAULT_PREFERENCES: dict[str, tuple[str, ...]] = {
    "punchy": ("flash", "whip_pan", "glitch", "cut"),
    "punchy_alt": ("whip_pan", "flash", "glitch", "cut"),
    "calmer": ("dip_to_black", "crossfade", "dissolve"),
    "soft_section": ("crossfade", "dissolve"),
    "hard": ("cut",),
    "mid": ("crossfade", "dissolve"),
    "calm": ("dissolve", "crossfade"),
}


@dataclass(frozen=True)
class PlannedCut:
    frame: int  # the cut's frame; the transition is centred on it
    time: float  # frame / fps
    beat: float  # the beat (or downbeat) the cut is on, seconds
    kind: str  # a TRANSITIONS name
    duration: float  # seconds of overlap, centred on the cut (0 for "cut")
    reason: str


@dataclass(frozen=True)
class _Energy:
    hop: float
    values: np.ndarray
    lo: float  # above this is no longer calm
    hi: float  # from this on is high
    flat: bool

    def mean(self, start: float, end: float) -> float | None:
        if self.values.size == 0 or self.hop <= 0:
            return None
        a = max(0, int(math.floor(start / self.hop)))
        b = min(self.values.size, int(math.ceil(end / self.hop)))
        window = self.values[a:b]
        window = window[np.isfinite(window)]
        return float(window.mean()) if window.size else None

    def level(self, start: float, end: float) -> str:
        value = self.mean(start, end)
        if self.flat or value is None:
            return "mid"
        if value >= self.hi:
            return "high"
        if value <= self.lo:
            return "calm"
        return "mid"


def energy_level(analysis: Mapping, start: float, end: float) -> str:
    """``calm``, ``mid`` or ``high``: the song's energy over [start, end)
    against its own spread (the rules the cuts follow)."""
    return _energy(analysis).level(start, end)


def _energy(analysis: Mapping) -> _Energy:
    energy = analysis.get("energy") or {}
    hop = float(energy.get("hop_s") or 0.0)
    values = np.asarray(energy.get("values") or [], dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return _Energy(hop, values, 0.0, 0.0, True)
    q10, q50, q90 = (float(q) for q in np.quantile(finite, [0.1, 0.5, 0.9]))
    return _Energy(
        hop, values, (q10 + q50) / 2, (q50 + q90) / 2, q90 - q10 < FLAT_SPREAD_LU
    )


def _pick(preferred: Sequence[str], palette: set[str] | None, soft: bool) -> str:
    for kind in preferred:
        if palette is None or kind in palette:
            return kind
    return "crossfade" if soft else "cut"


def plan_beat_sync(
    analysis: Mapping,
    *,
    duration: float,
    fps: int,
    min_scene_s: float = 2.0,
    palette: Sequence[str] | None = None,
    preferences: Mapping[str, Sequence[str]] | None = None,
    anchors: Sequence[tuple[float, str]] = (),
) -> list[PlannedCut]:
    """The cuts of a ``duration``-second video at ``fps``, in order (see the
    module's docstring for the rules). ValueError without beats.

    ``preferences`` replaces the preferred transitions of some join kinds
    (``JOIN_KINDS``). ``anchors`` are (seconds, label) cuts the caller asks
    for, such as a script's scene changes: each becomes a cut like a section
    change, on the downbeat nearest its time.
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    prefs = {**DEFAULT_PREFERENCES, **(preferences or {})}
    unknown_kinds = sorted(set(prefs) - set(JOIN_KINDS))
    if unknown_kinds:
        raise ValueError(f"unknown join kinds: {', '.join(unknown_kinds)}")
    beats = sorted(float(b) for b in analysis.get("beats") or [])
    if not beats:
        raise ValueError(
            "no beats were found in the music, so there is nothing to cut to"
        )
    allowed: set[str] | None = None
    if palette is not None:
        unknown = [k for k in palette if k not in TRANSITIONS]
        if unknown:
            raise ValueError(f"unknown transitions in palette: {', '.join(unknown)}")
        allowed = set(palette)

    downbeats = sorted(float(b) for b in analysis.get("downbeats") or [])
    candidates = downbeats if len(downbeats) >= 2 else beats
    bpm = float(analysis.get("bpm") or 0.0)
    if bpm <= 0:
        gaps = np.diff(beats)
        bpm = 60.0 / float(np.median(gaps)) if gaps.size else 120.0
    beat_s = 60.0 / bpm
    meter = int(analysis.get("meter") or 4)
    bar_s = beat_s * meter
    energy = _energy(analysis)

    total = round(duration * fps)
    if total < round(min_scene_s * fps) or total < 1:
        return []

    # Section changes: (frame, beat, previous label, next label).
    required: dict[int, tuple[float, str, str]] = {}
    sections = list(analysis.get("sections") or [])
    for prev, section in zip(sections, sections[1:], strict=False):
        start = float(section["start"])
        beat = min(candidates, key=lambda c: abs(c - start))
        frame = round(beat * fps)
        if 0 < frame < total and frame not in required:
            required[frame] = (
                beat,
                str(prev.get("label", "")),
                str(section.get("label", "")),
            )
    anchored: set[int] = set()  # cuts the caller asked for
    for time, label in anchors:
        beat = min(candidates, key=lambda c: abs(c - float(time)))
        frame = round(beat * fps)
        if 0 < frame < total and frame not in required:
            required[frame] = (beat, "", label)
            anchored.add(frame)

    # Cut frames: required ones plus energy-spaced candidates between them.
    shortest = min_scene_s * fps
    tolerance = 0.25 * beat_s
    cand_frames = sorted({(round(c * fps), c) for c in candidates})
    cuts: dict[int, tuple[float, str, str]] = {}
    bounds = [0, *sorted(required), total]
    for start, end in zip(bounds, bounds[1:], strict=False):
        tail = shortest / 2 if end == total else shortest
        last = start
        for frame, beat in cand_frames:
            if frame <= start or frame >= end or frame in cuts:
                continue
            level = energy.level(beat - bar_s, beat + bar_s)
            gap_s = (frame - last) / fps
            if (
                gap_s >= BARS_PER_SCENE[level] * bar_s - tolerance
                and frame - last >= shortest
                and end - frame >= tail
            ):
                cuts[frame] = (beat, level, "")
                last = frame

    frames = sorted({*cuts, *required})
    edges = [0, *frames, total]
    plan: list[PlannedCut] = []
    punches = 0  # punchy section changes so far (flash, whip_pan, flash...)
    for i, frame in enumerate(frames):
        before = energy.level(frame / fps - bar_s, frame / fps)
        after = energy.level(frame / fps, frame / fps + bar_s)
        if frame in required:
            beat, prev_label, next_label = required[frame]
            change = (
                next_label
                if frame in anchored
                else f"section change {prev_label or '?'} -> {next_label or '?'}"
            )
            if after == "high":
                punchy = prefs["punchy"] if punches % 2 == 0 else prefs["punchy_alt"]
                punches += 1
                kind = _pick(punchy, allowed, soft=False)
                want = min(beat_s / 2, PUNCH_MAX_S)
                reason = f"{change} into high energy: punchy"
            elif _RANK[after] < _RANK[before]:
                kind = _pick(prefs["calmer"], allowed, soft=True)
                want = 2 * beat_s
                reason = f"{change} into calmer energy ({before} -> {after})"
            else:
                kind = _pick(prefs["soft_section"], allowed, soft=True)
                want = beat_s
                reason = f"{change} at the same energy ({after})"
        else:
            beat, level, _ = cuts[frame]
            if level == "high":
                kind, want = _pick(prefs["hard"], allowed, soft=False), 0.0
                reason = "high energy: a cut every bar"
            elif level == "mid":
                kind, want = _pick(prefs["mid"], allowed, soft=True), beat_s
                reason = "mid energy: every 2 bars, one-beat fade"
            else:
                kind, want = _pick(prefs["calm"], allowed, soft=True), 2 * beat_s
                reason = "calm: every 4 bars, two-beat dissolve"
        if kind == "cut":
            want = 0.0
        neighbour = min(frame - edges[i], edges[i + 2] - frame) / fps
        cap = int(math.floor(min(MAX_DURATION, neighbour / 2) * fps + 1e-9))
        n = min(int(math.floor(want * fps + 0.5)), cap)  # nearest whole frame
        if kind != "cut" and n < MIN_FRAMES:
            reason += f" ({kind} too short here: cut)"
            kind, n = "cut", 0
        plan.append(PlannedCut(frame, frame / fps, beat, kind, n / fps, reason))
    return plan
