"""The first planner: bar-long scenes, cuts on the frame nearest a beat,
photos in turn, and no shot repeated while another is unused."""

from __future__ import annotations

import pytest

from projects.storyboard import (
    MOVES_CYCLE,
    PlanningError,
    plan_cut_frames,
    plan_scenes,
)

FPS = 30
BEATS = [i * 0.5 + 0.013 for i in range(64)]  # 120 BPM, 13 ms after the grid
DOWNBEATS = BEATS[::4]


def test_scenes_tile_the_duration_exactly():
    scenes = plan_scenes(
        beats=BEATS, downbeats=DOWNBEATS, duration=20.0, fps=FPS, image_count=3
    )
    assert scenes[0].start_frame == 0
    assert scenes[-1].end_frame == 600
    assert all(
        a.end_frame == b.start_frame for a, b in zip(scenes, scenes[1:], strict=False)
    )


def test_every_cut_is_on_the_frame_nearest_a_downbeat():
    scenes = plan_scenes(
        beats=BEATS, downbeats=DOWNBEATS, duration=20.0, fps=FPS, image_count=2
    )
    for scene in scenes[1:]:
        nearest = min(DOWNBEATS, key=lambda t: abs(t - scene.start(FPS)))
        assert scene.start_frame == round(nearest * FPS)
        assert abs(scene.start(FPS) - nearest) <= 0.5 / FPS


def test_beats_are_used_when_no_bar_grid_was_found():
    cuts = plan_cut_frames([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0], duration=5.0, fps=FPS)
    # 2 s apart at least; the last scene (4-5 s) is half the minimum, allowed.
    assert cuts == [60, 120]


def test_no_scene_is_shorter_than_the_minimum_and_the_last_is_no_sliver():
    scenes = plan_scenes(
        beats=BEATS, downbeats=DOWNBEATS, duration=9.0, fps=FPS, image_count=1
    )
    lengths = [s.end_frame - s.start_frame for s in scenes]
    assert min(lengths[:-1]) >= 2 * FPS
    assert lengths[-1] >= FPS


def test_every_photo_is_used_and_no_shot_repeats_before_all_are_used():
    scenes = plan_scenes(
        beats=BEATS, downbeats=DOWNBEATS, duration=30.0, fps=FPS, image_count=2
    )
    shots = [(s.image_index, s.move) for s in scenes]
    assert {s.image_index for s in scenes} == {0, 1}
    distinct = 2 * len(MOVES_CYCLE)
    assert len(shots) > distinct
    assert len(set(shots[:distinct])) == distinct


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_count": 0}, "photo"),
        ({"beats": [], "downbeats": []}, "no beats"),
        ({"duration": 0.0}, "shorter than one frame"),
    ],
)
def test_impossible_plans_say_why(kwargs, message):
    args = {
        "beats": BEATS,
        "downbeats": DOWNBEATS,
        "duration": 10.0,
        "fps": FPS,
        "image_count": 1,
    }
    with pytest.raises(PlanningError, match=message):
        plan_scenes(**{**args, **kwargs})


SECTIONS = [
    {"start": 0.0, "end": 7.9, "label": "intro"},
    {"start": 7.9, "end": 13.1, "label": "verse"},  # 13.1: between bars
    {"start": 13.1, "end": 32.0, "label": "chorus"},
]


def test_every_section_change_is_a_cut_on_the_nearest_downbeat():
    scenes = plan_scenes(
        beats=BEATS,
        downbeats=DOWNBEATS,
        sections=SECTIONS,
        duration=30.0,
        fps=FPS,
        image_count=2,
    )
    cut_times = [s.start(FPS) for s in scenes[1:]]
    for section in SECTIONS[1:]:
        nearest = min(DOWNBEATS, key=lambda t: abs(t - section["start"]))
        assert any(abs(cut - nearest) <= 0.5 / FPS for cut in cut_times)
    lengths = [s.end_frame - s.start_frame for s in scenes]
    assert min(lengths[:-1]) >= 2 * FPS


def test_section_cuts_are_made_even_between_bar_cuts():
    # Bars every 2 s and a 4 s minimum would skip the downbeat at 6 s, but a
    # section starting there still gets its cut.
    cuts = plan_cut_frames(
        [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0],
        duration=14.0,
        fps=FPS,
        min_scene_s=4.0,
        required=[6.0],
    )
    assert 180 in cuts
    assert cuts == sorted(cuts)
