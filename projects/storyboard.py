"""Planning scenes from the music: where the cuts go and what each scene shows.

A first planner: every section change is a cut, scenes are whole bars long
(so cuts fall on downbeats where the analysis has them, on beats otherwise),
at least ``min_scene_s`` long, and the user's photos take turns. Cut times
are snapped to the frame nearest their beat, so a cut is never more than
half a frame from the beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MOVES_CYCLE = ("zoom_in", "pan_right", "zoom_out", "pan_left", "pan_up", "pan_down")

# Where the crop centres a photo that does not fit the frame's shape. Faces in
# portraits sit in the upper part of the picture, so a centred crop of a
# portrait into a landscape frame cuts through the face; until a scene's
# focus comes from the detected face, frame the upper third.
DEFAULT_FOCUS = (0.5, 0.3)


@dataclass(frozen=True)
class PlannedScene:
    index: int
    start_frame: int
    end_frame: int
    image_index: int
    move: str

    def start(self, fps: int) -> float:
        return self.start_frame / fps

    def end(self, fps: int) -> float:
        return self.end_frame / fps


class PlanningError(ValueError):
    """The inputs cannot make a storyboard (no photos, no beats, too short)."""


def cut_candidates(beats: Sequence[float], downbeats: Sequence[float]) -> list[float]:
    """Downbeats when the analysis found a bar grid, every beat otherwise."""
    return sorted(downbeats) if len(downbeats) >= 2 else sorted(beats)


def section_cut_times(
    sections: Sequence[dict], candidates: Sequence[float]
) -> list[float]:
    """Where sections change, each moved onto the nearest cut candidate (a
    downbeat), so a new section always opens with a new shot on the bar."""
    if not candidates:
        return []
    times = []
    for section in sections[1:]:
        start = float(section["start"])
        times.append(min(candidates, key=lambda c: abs(c - start)))
    return sorted(set(times))


def plan_cut_frames(
    candidates: Sequence[float],
    *,
    duration: float,
    fps: int,
    min_scene_s: float = 2.0,
    required: Sequence[float] = (),
) -> list[int]:
    """Frame numbers of the cuts inside (0, total frames), each on a candidate.

    ``required`` cuts (section changes) are always made; between them, cuts
    fall on candidates at least ``min_scene_s`` apart, and no scene before a
    required cut is shorter than that either. The last scene may be half as
    long, so a video does not end on an abrupt sliver.
    """
    total = round(duration * fps)
    shortest = min_scene_s * fps
    fixed = sorted({round(t * fps) for t in required if 0 < round(t * fps) < total})
    frames = sorted({round(t * fps) for t in candidates})
    cuts: list[int] = []
    bounds = [0, *fixed, total]
    for start, end in zip(bounds, bounds[1:], strict=False):
        tail = shortest / 2 if end == total else shortest
        last = start
        for frame in frames:
            if frame <= start or frame >= end:
                continue
            if frame - last >= shortest and end - frame >= tail:
                cuts.append(frame)
                last = frame
        if end != total:
            cuts.append(end)
    return cuts


def plan_scenes(
    *,
    beats: Sequence[float],
    downbeats: Sequence[float],
    duration: float,
    fps: int,
    image_count: int,
    sections: Sequence[dict] = (),
    min_scene_s: float = 2.0,
) -> list[PlannedScene]:
    if image_count < 1:
        raise PlanningError("upload at least one photo to make a video")
    if duration * fps < 1:
        raise PlanningError("the video would be shorter than one frame")
    if not beats:
        raise PlanningError(
            "no beats were found in the music, so there is nothing to cut to"
        )
    candidates = cut_candidates(beats, downbeats)
    cuts = plan_cut_frames(
        candidates,
        duration=duration,
        fps=fps,
        min_scene_s=min_scene_s,
        required=section_cut_times(sections, candidates),
    )
    bounds = [0, *cuts, round(duration * fps)]
    return [
        PlannedScene(
            index=i,
            start_frame=start,
            end_frame=end,
            image_index=i % image_count,
            # The move advances once every photo has been shown, so a photo
            # comes back with a different move rather than the same shot.
            move=MOVES_CYCLE[(i // image_count) % len(MOVES_CYCLE)],
        )
        for i, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]
