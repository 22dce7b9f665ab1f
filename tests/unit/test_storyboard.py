"""The storyboard: the beat-sync planner's cuts and transitions turned into
scenes that tile the video, photos in turn, and no shot repeated while
another is unused."""

from __future__ import annotations

import pytest

from projects.storyboard import MOVES_CYCLE, PlanningError, plan_scenes
from workers.assembly.beatsync import plan_beat_sync
from workers.assembly.transitions import TRANSITIONS

FPS = 30
BEATS = [i * 0.5 + 0.013 for i in range(160)]  # 120 BPM, 13 ms after the grid
DOWNBEATS = BEATS[::4]
SECTIONS = [
    {"start": 0.0, "end": 7.9, "label": "intro"},
    {"start": 7.9, "end": 13.1, "label": "verse"},  # 13.1: between bars
    {"start": 13.1, "end": 80.0, "label": "chorus"},
]


def analysis(**changes) -> dict:
    """An ``analyze_audio --json`` document of a steady 120 BPM song."""
    return {
        "duration": 80.0,
        "bpm": 120.0,
        "meter": 4,
        "beats": BEATS,
        "downbeats": DOWNBEATS,
        "sections": SECTIONS,
        "energy": {"hop_s": 0.5, "values": [-20.0] * 160},
        **changes,
    }


def test_scenes_tile_the_duration_exactly():
    scenes = plan_scenes(analysis(), duration=20.0, fps=FPS, image_count=3)

    assert len(scenes) > 2
    assert scenes[0].start_frame == 0
    assert scenes[-1].end_frame == 600
    assert all(
        a.end_frame == b.start_frame for a, b in zip(scenes, scenes[1:], strict=False)
    )


def test_every_cut_is_on_the_frame_nearest_a_downbeat():
    scenes = plan_scenes(analysis(), duration=30.0, fps=FPS, image_count=2)

    for scene in scenes[1:]:
        nearest = min(DOWNBEATS, key=lambda t: abs(t - scene.start(FPS)))
        assert scene.start_frame == round(nearest * FPS)
        assert abs(scene.start(FPS) - nearest) <= 0.5 / FPS


def test_each_scene_carries_the_planned_transition_into_the_next():
    song = analysis()
    plan = plan_beat_sync(song, duration=30.0, fps=FPS)
    scenes = plan_scenes(song, duration=30.0, fps=FPS, image_count=2)

    assert [s.start_frame for s in scenes[1:]] == [c.frame for c in plan]
    assert [(s.transition, s.transition_frames) for s in scenes[:-1]] == [
        (c.kind, round(c.duration * FPS)) for c in plan
    ]
    assert (scenes[-1].transition, scenes[-1].transition_frames) == ("cut", 0)
    assert all(s.transition in TRANSITIONS for s in scenes)
    # A steady song at one energy: soft joins, not only hard cuts.
    assert any(s.transition_frames > 0 for s in scenes)


def test_transition_windows_stay_inside_the_scenes_they_join():
    scenes = plan_scenes(analysis(), duration=60.0, fps=FPS, image_count=2)

    windows = [
        (b.start_frame - a.transition_frames // 2, a.transition_frames)
        for a, b in zip(scenes, scenes[1:], strict=False)
    ]
    for (first, n), a, b in zip(windows, scenes, scenes[1:], strict=False):
        if n:
            assert a.start_frame < first and first + n < b.end_frame
    # Two joins never share a frame.
    for (first, n), (next_first, _) in zip(windows, windows[1:], strict=False):
        assert first + n <= next_first


def test_a_video_shorter_than_a_scene_is_one_shot_without_transitions():
    scenes = plan_scenes(analysis(), duration=1.5, fps=FPS, image_count=2)

    assert [(s.start_frame, s.end_frame, s.transition) for s in scenes] == [
        (0, 45, "cut")
    ]


def test_every_photo_is_used_and_no_shot_repeats_before_all_are_used():
    scenes = plan_scenes(analysis(), duration=78.0, fps=FPS, image_count=2)

    shots = [(s.image_index, s.move) for s in scenes]
    assert [s.image_index for s in scenes[:4]] == [0, 1, 0, 1]
    distinct = 2 * len(MOVES_CYCLE)
    assert len(shots) > distinct
    assert len(set(shots[:distinct])) == distinct


def test_every_section_change_is_a_cut_on_the_nearest_downbeat():
    scenes = plan_scenes(analysis(), duration=30.0, fps=FPS, image_count=2)

    cut_times = [s.start(FPS) for s in scenes[1:]]
    for section in SECTIONS[1:]:
        nearest = min(DOWNBEATS, key=lambda t: abs(t - section["start"]))
        assert any(abs(cut - nearest) <= 0.5 / FPS for cut in cut_times)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_count": 0}, "photo"),
        ({"analysis": analysis(beats=[], downbeats=[])}, "no beats"),
        ({"duration": 0.0}, "shorter than one frame"),
        ({"palette": ["crossfade", "spin"]}, "unknown transitions"),
    ],
)
def test_impossible_plans_say_why(kwargs, message):
    args = {"analysis": analysis(), "duration": 10.0, "fps": FPS, "image_count": 1}
    args.update(kwargs)
    song = args.pop("analysis")

    with pytest.raises(PlanningError, match=message):
        plan_scenes(song, **args)
