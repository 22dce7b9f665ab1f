"""Planning scenes from the music: where the cuts go, how each scene joins the
next, and what each scene shows.

Where the cuts go and how they join is the beat-sync planner's job
(``workers.assembly.beatsync.plan_beat_sync``): cuts on the frame nearest a
downbeat, spaced by the music's energy, every section change a cut, and a
transition chosen for each join (a hard cut, a crossfade, a dissolve, a flash,
...), centred on its cut. This module turns that plan into scenes: the user's
photos take turns, and the camera move advances once every photo has been
shown, so a photo comes back with a different shot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from workers.assembly.beatsync import plan_beat_sync

MOVES_CYCLE = ("zoom_in", "pan_right", "zoom_out", "pan_left", "pan_up", "pan_down")

# Where the crop centres a photo that does not fit the frame's shape. Faces in
# portraits sit in the upper part of the picture, so a centred crop of a
# portrait into a landscape frame cuts through the face; until a scene's
# focus comes from the detected face, frame the upper third.
DEFAULT_FOCUS = (0.5, 0.3)


@dataclass(frozen=True)
class PlannedScene:
    """Frames [start_frame, end_frame) of the output, cut to cut.

    ``transition`` joins this scene to the NEXT one (the last scene's is a
    ``cut`` of 0 frames): ``transition_frames`` frames centred on the next
    scene's ``start_frame``, i.e. output frames
    [end_frame - n // 2, end_frame - n // 2 + n).
    """

    index: int
    start_frame: int
    end_frame: int
    image_index: int
    move: str
    transition: str = "cut"
    transition_frames: int = 0
    reason: str = ""  # why the planner chose this join

    def start(self, fps: int) -> float:
        return self.start_frame / fps

    def end(self, fps: int) -> float:
        return self.end_frame / fps


class PlanningError(ValueError):
    """The inputs cannot make a storyboard (no photos, no beats, too short)."""


def plan_scenes(
    analysis: Mapping,
    *,
    duration: float,
    fps: int,
    image_count: int,
    min_scene_s: float = 2.0,
    palette: Sequence[str] | None = None,
) -> list[PlannedScene]:
    """The scenes of a ``duration``-second video at ``fps``, tiling frames
    [0, round(duration * fps)) exactly.

    ``analysis`` is the ``analyze_audio --json`` contract
    (``AudioAnalysis.to_contract()``); ``palette`` restricts the transitions
    (see ``plan_beat_sync``).
    """
    if image_count < 1:
        raise PlanningError("upload at least one photo to make a video")
    total = round(duration * fps)
    if total < 1:
        raise PlanningError("the video would be shorter than one frame")
    try:
        cuts = plan_beat_sync(
            analysis,
            duration=duration,
            fps=fps,
            min_scene_s=min_scene_s,
            palette=palette,
        )
    except ValueError as exc:  # no beats, an unknown transition in the palette
        raise PlanningError(str(exc)) from exc
    bounds = [0, *(c.frame for c in cuts), total]
    scenes = []
    for i, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        join = cuts[i] if i < len(cuts) else None
        scenes.append(
            PlannedScene(
                index=i,
                start_frame=start,
                end_frame=end,
                image_index=i % image_count,
                move=MOVES_CYCLE[(i // image_count) % len(MOVES_CYCLE)],
                transition=join.kind if join else "cut",
                # The planner's durations are whole frames.
                transition_frames=round(join.duration * fps) if join else 0,
                reason=join.reason if join else "",
            )
        )
    return scenes
