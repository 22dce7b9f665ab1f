"""Planning scenes from the music: where the cuts go and what each scene shows.

A first planner: scenes are whole bars long (so cuts fall on downbeats where
the analysis has them, on beats otherwise), at least ``min_scene_s`` long, and
the user's photos take turns. Cut times are snapped to the frame nearest their
beat, so a cut is never more than half a frame from the beat.
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


def plan_cut_frames(
    candidates: Sequence[float],
    *,
    duration: float,
    fps: int,
    min_scene_s: float = 2.0,
) -> list[int]:
    """Frame numbers of the cuts inside (0, total frames), each on a candidate."""
    total = round(duration * fps)
    cuts: list[int] = []
    last = 0
    for time in candidates:
        frame = round(time * fps)
        if frame - last < min_scene_s * fps:
            continue
        # The last scene must not be a sliver either.
        if total - frame < min_scene_s * fps / 2:
            break
        cuts.append(frame)
        last = frame
    return cuts


def plan_scenes(
    *,
    beats: Sequence[float],
    downbeats: Sequence[float],
    duration: float,
    fps: int,
    image_count: int,
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
    cuts = plan_cut_frames(
        cut_candidates(beats, downbeats),
        duration=duration,
        fps=fps,
        min_scene_s=min_scene_s,
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
