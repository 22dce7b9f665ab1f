"""The storyboard planner on the analyses of three synthesized songs (4/4 at
120 BPM, 3/4 at 96 BPM, 4/4 at 140 BPM with distinct sections): scenes tile the
video, cuts land on beats, section changes on downbeats, every photo is shown,
the script's scene changes are cuts, and the plan is deterministic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from workers.assembly.beatsync import plan_beat_sync
from workers.audio.analysis import analyze_audio
from workers.audio.synth import SongSpec, synthesize_song, write_wav
from workers.storyboard.planner import (
    SPLIT_MIN_S,
    ModelChoice,
    Photo,
    PlanningError,
    Storyboard,
    choose_model,
    plan_storyboard,
    shot_seed,
)
from workers.storyboard.prompts import CharacterRef
from workers.storyboard.scripts import Script, ScriptScene, parse_markdown
from workers.storyboard.styles import default_styles, join_preferences

STYLES = default_styles()
CINEMATIC = STYLES["cinematic"]
SONGS = {
    # The demo song's sound, shortened to 48 s.
    "demo_120": SongSpec(
        bpm=120,
        seed=2026,
        sections=(("intro", 4), ("verse", 8), ("chorus", 8), ("outro", 4)),
    ),
    # A waltz: bars of three beats, 45 s.
    "waltz_96": SongSpec(
        bpm=96,
        seed=7,
        beats_per_bar=3,
        sections=(("intro", 4), ("verse", 8), ("chorus", 8), ("outro", 4)),
    ),
    # Fast, with its own chords per section, 55 s.
    "distinct_140": SongSpec(
        bpm=140,
        seed=11,
        distinct_sections=True,
        sections=(
            ("intro", 4),
            ("verse", 8),
            ("chorus", 8),
            ("bridge", 4),
            ("chorus", 8),
        ),
    ),
}
# 17.3 s ends mid-bar; 24 and 45 s are longer than a section.
DURATIONS = (12.0, 17.3, 24.0, 45.0)
FPS_CHOICES = (24, 30)
CASES = [
    pytest.param(song, duration, fps, id=f"{song}-{duration:g}s-{fps}fps")
    for song in SONGS
    for duration in DURATIONS
    for fps in FPS_CHOICES
]
MARA = CharacterRef("Mara", description="red jacket")


@pytest.fixture(scope="module")
def analyses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each song synthesized, written as WAV and analysed, once per module."""
    folder = tmp_path_factory.mktemp("planner_songs")
    found = {}
    for name, spec in SONGS.items():
        path = write_wav(folder / f"{name}.wav", synthesize_song(spec))
        found[name] = analyze_audio(path).to_dict()
    return found


def photos(count: int, with_character: int | None = None) -> list[Photo]:
    """``count`` photos, the first ``with_character`` of them (all by
    default) showing the character."""
    if with_character is None:
        with_character = count
    return [Photo(i, character=i < with_character) for i in range(count)]


def plan(analysis: dict[str, Any], **kwargs: Any) -> Storyboard:
    args: dict[str, Any] = {
        "duration": 24.0,
        "fps": 30,
        "photos": photos(1),
        "style": CINEMATIC,
    }
    args.update(kwargs)
    return plan_storyboard(analysis, **args)


def cut_frames(board: Storyboard) -> list[int]:
    return [shot.start_frame for shot in board.shots[1:]]


def on_grid(frame: int, fps: int, times: Sequence[float]) -> bool:
    """Whether ``frame`` is the frame nearest one of ``times``."""
    nearest = min(times, key=lambda t: abs(t - frame / fps))
    return frame == round(nearest * fps) and abs(frame / fps - nearest) <= 0.5 / fps


def nearest_frame(times: Sequence[float], t: float, fps: int) -> int:
    return round(min(times, key=lambda x: abs(x - t)) * fps)


def auto_scene_count(analysis: dict[str, Any], duration: float, fps: int) -> int:
    return len(plan(analysis, duration=duration, fps=fps).shots)


# --- timing ---------------------------------------------------------------------


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_scenes_tile_the_video_exactly(analyses, song, duration, fps) -> None:
    board = plan(analyses[song], duration=duration, fps=fps, photos=photos(3))

    total = round(duration * fps)
    assert board.frames == total and board.fps == fps
    assert board.shots[0].start_frame == 0
    assert board.shots[-1].end_frame == total
    for a, b in zip(board.shots, board.shots[1:], strict=False):
        assert a.end_frame == b.start_frame
    assert all(s.end_frame > s.start_frame for s in board.shots)
    assert [s.index for s in board.shots] == list(range(len(board.shots)))
    assert len(board.shots) >= 2


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_the_video_is_as_long_as_asked_within_a_frame(
    analyses, song, duration, fps
) -> None:
    board = plan(analyses[song], duration=duration, fps=fps)

    assert abs(board.duration - duration) <= 1 / fps
    assert board.shots[-1].end(fps) == pytest.approx(board.duration)


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_every_cut_is_on_the_frame_nearest_a_beat(
    analyses, song, duration, fps
) -> None:
    analysis = analyses[song]
    beats = analysis["beats"]
    # Ten photos: more than the short videos have scenes, so some are split.
    for count in (1, 10):
        board = plan(analysis, duration=duration, fps=fps, photos=photos(count))
        for frame in cut_frames(board):
            assert on_grid(frame, fps, beats), (count, frame)


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_with_one_photo_every_cut_is_on_the_frame_nearest_a_downbeat(
    analyses, song, duration, fps
) -> None:
    analysis = analyses[song]

    board = plan(analysis, duration=duration, fps=fps)

    for frame in cut_frames(board):
        assert on_grid(frame, fps, analysis["downbeats"]), frame


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_every_section_change_in_the_video_is_a_cut_on_the_nearest_downbeat(
    analyses, song, duration, fps
) -> None:
    analysis = analyses[song]
    total = round(duration * fps)

    board = plan(analysis, duration=duration, fps=fps, photos=photos(4, 2))

    changes = [
        nearest_frame(analysis["downbeats"], float(s["start"]), fps)
        for s in analysis["sections"][1:]
    ]
    inside = [f for f in changes if 0 < f < total]
    assert set(inside) <= set(cut_frames(board))
    if duration > 12:
        assert inside  # every song changes section within its first 12 s


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_each_scene_carries_the_beat_sync_plans_transition_into_the_next(
    analyses, song, duration, fps
) -> None:
    analysis = analyses[song]
    cuts = plan_beat_sync(
        analysis,
        duration=round(duration * fps) / fps,
        fps=fps,
        palette=CINEMATIC.transitions,
        preferences=join_preferences(),
    )

    board = plan(analysis, duration=duration, fps=fps)

    assert cut_frames(board) == [c.frame for c in cuts]
    assert [(s.transition, s.transition_frames) for s in board.shots[:-1]] == [
        (c.kind, round(c.duration * fps)) for c in cuts
    ]
    assert [s.reason for s in board.shots[:-1]] == [c.reason for c in cuts]
    assert (board.shots[-1].transition, board.shots[-1].transition_frames) == (
        "cut",
        0,
    )


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_transition_windows_stay_inside_the_scenes_they_join(
    analyses, song, duration, fps
) -> None:
    for count in (1, 10):
        board = plan(analyses[song], duration=duration, fps=fps, photos=photos(count))
        shots = board.shots
        windows = [
            (b.start_frame - a.transition_frames // 2, a.transition_frames)
            for a, b in zip(shots, shots[1:], strict=False)
        ]
        for (first, n), a, b in zip(windows, shots, shots[1:], strict=False):
            if n:
                assert a.start_frame < first and first + n < b.end_frame
        # Two joins never share a frame.
        for (first, n), (next_first, _) in zip(windows, windows[1:], strict=False):
            assert first + n <= next_first


def test_a_video_shorter_than_a_scene_is_one_shot_without_transitions(
    analyses,
) -> None:
    board = plan(analyses["demo_120"], duration=1.5, fps=30)

    assert [(s.start_frame, s.end_frame, s.transition) for s in board.shots] == [
        (0, 45, "cut")
    ]
    assert board.notes == ()


@pytest.mark.parametrize("song", SONGS)
def test_each_scene_knows_its_section_energy_and_length_in_beats(
    analyses, song
) -> None:
    analysis = analyses[song]

    board = plan(analysis, duration=45.0, fps=30)

    for shot in board.shots:
        middle = (shot.start(30) + shot.end(30)) / 2
        section = next(
            s for s in analysis["sections"] if s["start"] <= middle < s["end"]
        )
        assert shot.section == section["label"]
        assert shot.energy in ("calm", "mid", "high")
        seconds = shot.end(30) - shot.start(30)
        assert shot.beats == pytest.approx(seconds * analysis["bpm"] / 60, abs=0.01)
        assert 0.0 <= shot.motion <= 1.0


# --- photos ---------------------------------------------------------------------


@pytest.mark.parametrize("song", SONGS)
@pytest.mark.parametrize(("duration", "fps"), [(12.0, 24), (24.0, 30), (45.0, 30)])
def test_every_photo_is_shown(analyses, song, duration, fps) -> None:
    analysis = analyses[song]
    most = auto_scene_count(analysis, duration, fps) + 3

    for count in range(1, most + 1):
        for with_character in sorted({0, 1, count // 2, count}):
            board = plan(
                analysis,
                duration=duration,
                fps=fps,
                photos=photos(count, with_character),
            )
            shown = {s.photo for s in board.shots}
            assert shown == set(range(count)), (count, with_character)
            assert board.notes == ()


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_more_photos_than_scenes_splits_scenes_on_beats(
    analyses, song, duration, fps
) -> None:
    analysis = analyses[song]
    automatic = plan(analysis, duration=duration, fps=fps)
    count = len(automatic.shots) + 3

    board = plan(analysis, duration=duration, fps=fps, photos=photos(count, 2))

    assert len(board.shots) == count
    assert {s.photo for s in board.shots} == set(range(count))
    assert set(cut_frames(automatic)) <= set(cut_frames(board))
    split = [s for s in board.shots[1:] if s.start_frame not in cut_frames(automatic)]
    assert len(split) == 3
    for shot in split:
        assert on_grid(shot.start_frame, fps, analysis["beats"])
        before = board.shots[shot.index - 1]
        assert (before.transition, before.transition_frames) == ("cut", 0)
    # Both halves of a split scene are at least SPLIT_MIN_S long.
    lengths = {s.start_frame: s.end_frame - s.start_frame for s in board.shots}
    ends = {s.end_frame: s.end_frame - s.start_frame for s in board.shots}
    for shot in split:
        assert lengths[shot.start_frame] >= SPLIT_MIN_S * fps
        assert ends[shot.start_frame] >= SPLIT_MIN_S * fps


def test_photos_beyond_what_the_beats_allow_are_noted(analyses) -> None:
    short = plan(analyses["demo_120"], duration=1.5, fps=30, photos=photos(2))
    crowded = plan(analyses["demo_120"], duration=12.0, fps=30, photos=photos(40))

    assert len(short.shots) == 1
    assert "some photos are not shown" in " ".join(short.notes)
    assert len(crowded.shots) < 40
    assert "40 photos need 40 scenes" in " ".join(crowded.notes)
    # Splitting stopped before any scene got shorter than a split allows.
    assert all(
        s.end_frame - s.start_frame >= SPLIT_MIN_S * 30 for s in crowded.shots[:-1]
    )


@pytest.mark.parametrize("song", SONGS)
@pytest.mark.parametrize("duration", DURATIONS)
def test_the_characters_photos_go_to_the_scenes_with_the_character(
    analyses, song, duration
) -> None:
    for count, with_character in ((2, 1), (5, 2), (5, 4), (9, 3)):
        pictures = photos(count, with_character)
        board = plan(analyses[song], duration=duration, photos=pictures)

        for shot in board.shots:
            assert pictures[shot.photo].character == shot.features_character
        flags = {s.features_character for s in board.shots}
        assert flags == {True, False}


@pytest.mark.parametrize("song", SONGS)
def test_with_only_character_photos_every_scene_shows_the_character(
    analyses, song
) -> None:
    board = plan(analyses[song], duration=45.0, photos=photos(3))

    assert all(s.features_character for s in board.shots)


@pytest.mark.parametrize("song", SONGS)
def test_without_character_photos_no_scene_shows_the_character(analyses, song) -> None:
    board = plan(analyses[song], duration=45.0, photos=photos(3, 0), character=MARA)

    assert not any(s.features_character for s in board.shots)
    assert all("Mara" not in s.prompt.prompt for s in board.shots)


# --- look ----------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(STYLES))
def test_transitions_are_the_styles_and_the_grade_is_the_styles(analyses, key) -> None:
    style = STYLES[key]
    for song in SONGS:
        board = plan(analyses[song], duration=45.0, style=style, photos=photos(16, 12))

        assert board.style == key
        for shot in board.shots:
            # cut and crossfade: the fallbacks when the palette has no match.
            assert shot.transition in {*style.transitions, "cut", "crossfade"}
            assert shot.grade == style.grade
            assert shot.grade_intensity == style.grade_intensity
            assert shot.move in style.moves


@pytest.mark.parametrize(
    ("key", "punch"),
    [("cinematic", "flash"), ("retro_vhs", "glitch"), ("minimal", "cut")],
)
def test_the_loud_chorus_comes_in_with_the_styles_own_punchy_join(
    analyses, key, punch
) -> None:
    for song in ("demo_120", "waltz_96"):
        board = plan(analyses[song], duration=45.0, style=STYLES[key])

        into_chorus = [s for s in board.shots if "-> chorus" in s.reason]
        assert into_chorus, song
        assert all("punchy" in s.reason for s in into_chorus)
        assert {s.transition for s in into_chorus} == {punch}


# --- determinism, seeds and moves ----------------------------------------------


@pytest.mark.parametrize("song", SONGS)
def test_the_same_inputs_give_the_same_storyboard(analyses, song) -> None:
    def board() -> Storyboard:
        return plan(
            analyses[song], duration=45.0, photos=photos(5, 3), seed=99, character=MARA
        )

    first, second = board(), board()

    assert first == second
    assert [s.prompt.prompt for s in first.shots] == [
        s.prompt.prompt for s in second.shots
    ]


@pytest.mark.parametrize("song", SONGS)
def test_each_scene_gets_its_own_seed_from_the_storyboards_seed(analyses, song) -> None:
    board = plan(analyses[song], duration=45.0, seed=5)
    other = plan(analyses[song], duration=45.0, seed=6)

    seeds = [s.seed for s in board.shots]
    assert len(set(seeds)) == len(seeds)
    assert seeds == [shot_seed(5, k) for k in range(len(seeds))]
    assert all(0 <= s < 2**31 for s in seeds)
    assert not set(seeds) & {s.seed for s in other.shots}


def test_a_single_photo_gets_a_new_move_every_scene(analyses) -> None:
    for key in ("cinematic", "minimal", "watercolor"):
        board = plan(analyses["demo_120"], duration=45.0, style=STYLES[key])
        moves = [s.move for s in board.shots]
        assert all(a != b for a, b in zip(moves, moves[1:], strict=False)), key


@pytest.mark.parametrize("song", SONGS)
def test_neighbouring_scenes_get_different_moves(analyses, song) -> None:
    for count in (1, 2, 3, 5):
        board = plan(analyses[song], duration=45.0, photos=photos(count))
        moves = [s.move for s in board.shots]
        assert all(a != b for a, b in zip(moves, moves[1:], strict=False)), (
            count,
            moves,
        )


@pytest.mark.parametrize("song", SONGS)
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_a_photo_shown_again_gets_another_move(analyses, song, count) -> None:
    board = plan(analyses[song], duration=45.0, photos=photos(count))

    by_photo: dict[int, list[str]] = {}
    for shot in board.shots:
        by_photo.setdefault(shot.photo, []).append(shot.move)
    assert any(len(moves) > 1 for moves in by_photo.values())
    distinct = len(set(CINEMATIC.moves))
    for moves in by_photo.values():
        # No shot (photo and move) repeats before the photo had every move.
        first = moves[:distinct]
        assert len(set(first)) == len(first)


# --- prompts --------------------------------------------------------------------


def test_each_shot_has_a_prompt_written_from_its_own_context(analyses) -> None:
    board = plan(analyses["demo_120"], duration=24.0, photos=photos(3, 2), title="Go")

    for shot in board.shots:
        context = shot.context
        assert context is not None and shot.prompt is not None
        assert (context.index, context.count) == (shot.index, len(board.shots))
        assert context.start == shot.start(30) and context.end == shot.end(30)
        assert (context.seed, context.move, context.energy) == (
            shot.seed,
            shot.move,
            shot.energy,
        )
        assert context.features_character == shot.features_character
        assert context.title == "Go"
        assert CINEMATIC.prompt[0] in shot.prompt.prompt
    for before, after in zip(board.shots, board.shots[1:], strict=False):
        assert after.context.previous == before.prompt.stages["concept"]


def test_the_models_kind_and_the_frame_shape_reach_the_prompts(analyses) -> None:
    models = [ModelChoice("ltx", kind="video", quality=5, speed=1)]

    board = plan(
        analyses["demo_120"], duration=12.0, models=models, width=1080, height=1920
    )

    assert board.model == "ltx"
    for shot in board.shots:
        assert shot.model == "ltx"
        assert shot.context.model_kind == "video"
        technical = shot.prompt.stages["technical"]
        assert "vertical 9:16 frame" in technical
        assert "natural motion" in technical


# --- scripts --------------------------------------------------------------------


def _script(starts: Sequence[float | None]) -> Script:
    scenes = tuple(
        ScriptScene(f"Part {i + 1}", f"Words of part {i + 1}.", start=t)
        for i, t in enumerate(starts)
    )
    return Script("Test", None, (), {}, scenes)


def _downbeats_inside(
    analysis: dict[str, Any], duration: float, count: int
) -> list[float]:
    """``count`` downbeats spread over the video, away from its ends."""
    inside = [d for d in analysis["downbeats"] if 2.5 < d < duration - 2.5]
    step = len(inside) / (count + 1)
    return [inside[int((k + 1) * step)] for k in range(count)]


def _expected_script_index(board: Storyboard, script_cuts: list[int]) -> list[int]:
    """Each shot's script scene: the last one whose cut is at or before it."""
    return [
        sum(1 for frame in script_cuts if frame <= shot.start_frame)
        for shot in board.shots
    ]


@pytest.mark.parametrize("song", SONGS)
@pytest.mark.parametrize(("duration", "fps"), [(24.0, 30), (45.0, 24)])
@pytest.mark.parametrize("offset", [-0.2, 0.2], ids=["before", "after"])
def test_a_timed_script_cuts_on_the_downbeat_nearest_each_timestamp(
    analyses, song, duration, fps, offset
) -> None:
    analysis = analyses[song]
    marks = [d + offset for d in _downbeats_inside(analysis, duration, 3)]

    board = plan(
        analysis, duration=duration, fps=fps, script=_script([0.0, *marks, 500.0])
    )

    for mark in marks:
        assert nearest_frame(analysis["downbeats"], mark, fps) in cut_frames(board)


@pytest.mark.parametrize("song", SONGS)
@pytest.mark.parametrize(("duration", "fps"), [(24.0, 30), (45.0, 24)])
def test_the_shots_carry_the_script_scene_of_their_span(
    analyses, song, duration, fps
) -> None:
    # Each timestamp a little before its downbeat.
    analysis = analyses[song]
    marks = [d - 0.2 for d in _downbeats_inside(analysis, duration, 3)]
    script = _script([0.0, *marks])

    board = plan(analysis, duration=duration, fps=fps, script=script)

    cuts = [nearest_frame(analysis["downbeats"], m, fps) for m in marks]
    expected = _expected_script_index(board, cuts)
    assert [s.script_index for s in board.shots] == expected
    for shot in board.shots:
        scene = script.scenes[shot.script_index]
        assert (shot.script_heading, shot.script_text) == (scene.heading, scene.text)
        assert shot.prompt.stages["concept"].startswith(scene.heading)


@pytest.mark.parametrize("song", SONGS)
def test_the_shots_after_a_script_cut_carry_its_scene_when_it_is_late(
    analyses, song
) -> None:
    # Each timestamp a little after its downbeat: the cut comes before it.
    analysis = analyses[song]
    marks = [d + 0.2 for d in _downbeats_inside(analysis, 24.0, 3)]

    board = plan(analysis, duration=24.0, script=_script([0.0, *marks]))

    cuts = [nearest_frame(analysis["downbeats"], m, 30) for m in marks]
    assert [s.script_index for s in board.shots] == _expected_script_index(board, cuts)


@pytest.mark.parametrize(("song", "duration", "fps"), CASES)
def test_an_untimed_script_cuts_the_video_into_equal_spans(
    analyses, song, duration, fps
) -> None:
    analysis = analyses[song]
    total = round(duration * fps)

    board = plan(analysis, duration=duration, fps=fps, script=_script([None] * 3))

    for k in (1, 2):
        share = total / fps * k / 3
        assert nearest_frame(analysis["downbeats"], share, fps) in cut_frames(board)
    indices = [s.script_index for s in board.shots]
    assert indices == sorted(indices)
    assert indices[0] == 0


def test_an_untimed_script_gives_each_span_its_scene(analyses) -> None:
    wrong = []
    for song, analysis in analyses.items():
        for duration in DURATIONS:
            for fps in FPS_CHOICES:
                total = round(duration * fps)
                board = plan(
                    analysis, duration=duration, fps=fps, script=_script([None] * 3)
                )
                cuts = [
                    nearest_frame(analysis["downbeats"], total / fps * k / 3, fps)
                    for k in (1, 2)
                ]
                indices = [s.script_index for s in board.shots]
                if indices != _expected_script_index(board, cuts):
                    wrong.append((song, duration, fps, indices))

    assert wrong == []


SCRIPT_WITH_CHARACTERS = """---
title: Night run
characters: [Mara]
---
## 0:00 Opening
Mara waits in a neon-lit arcade.

## 0:07.8 The city
An empty street in the rain, nobody around.

## 0:15.8 Return
Mara dances on a rooftop at dusk.

## 1:30 Too late
Mara leaves the city behind.
"""


def test_a_script_scene_without_the_character_gets_shots_without_them(
    analyses,
) -> None:
    script = parse_markdown(SCRIPT_WITH_CHARACTERS)
    pictures = [Photo(0, character=True), Photo(1, character=False)]

    board = plan(
        analyses["demo_120"],
        duration=24.0,
        photos=pictures,
        script=script,
        character=MARA,
    )

    by_scene: dict[int, set[bool]] = {}
    for shot in board.shots:
        by_scene.setdefault(shot.script_index, set()).add(shot.features_character)
        assert pictures[shot.photo].character == shot.features_character
    assert by_scene == {0: {True}, 1: {False}, 2: {True}}
    for shot in board.shots:
        if shot.script_index == 1:
            assert "Mara" not in shot.prompt.stages["concept"]
            assert shot.script_heading == "The city"


def test_a_script_scene_past_the_end_is_explained_in_the_notes(analyses) -> None:
    script = parse_markdown(SCRIPT_WITH_CHARACTERS)

    board = plan(analyses["demo_120"], duration=24.0, script=script)

    assert any(
        "1 script scene(s) start after the video's 24.0 s" in note
        for note in board.notes
    )
    assert 3 not in {s.script_index for s in board.shots}


def test_a_script_scene_before_the_end_needs_no_note(analyses) -> None:
    board = plan(analyses["demo_120"], duration=24.0, script=_script([0.0, 10.0]))

    assert board.notes == ()


# --- models ---------------------------------------------------------------------

MODELS = [
    ModelChoice("slow-best", kind="video", quality=9, speed=1),
    ModelChoice("fast-ok", kind="image", quality=4, speed=8),
    ModelChoice("best-quicker", kind="video", quality=9, speed=3),
    ModelChoice("fastest-worse", kind="image", quality=2, speed=8),
]


def test_choose_model_prefers_quality_then_speed() -> None:
    assert choose_model(MODELS, "quality") == "best-quicker"
    assert choose_model(MODELS) == "best-quicker"


def test_choose_model_prefers_speed_then_quality() -> None:
    assert choose_model(MODELS, "speed") == "fast-ok"


@pytest.mark.parametrize("preference", ["quality", "speed"])
def test_choose_model_without_models_is_the_photo_renderer(preference: str) -> None:
    assert choose_model([], preference) == "photo"


def test_choose_model_refuses_an_unknown_preference() -> None:
    with pytest.raises(PlanningError, match="cheapest"):
        choose_model(MODELS, "cheapest")
    with pytest.raises(PlanningError, match="unknown preference"):
        choose_model([], "cheapest")


def test_the_storyboard_uses_the_chosen_model_for_every_scene(analyses) -> None:
    board = plan(analyses["demo_120"], models=MODELS, preference="speed")

    assert board.model == "fast-ok"
    assert {s.model for s in board.shots} == {"fast-ok"}
    assert {s.context.model_kind for s in board.shots} == {"image"}


# --- impossible plans -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"photos": []}, "photo"),
        ({"analysis": {"beats": [], "downbeats": []}}, "no beats"),
        ({"duration": 0.0}, "shorter than one frame"),
        ({"style": replace(CINEMATIC, transitions=("crossfade", "spin"))}, "spin"),
        ({"preference": "cheapest"}, "unknown preference"),
    ],
)
def test_impossible_plans_say_why(analyses, changes, message) -> None:
    args: dict[str, Any] = {"analysis": analyses["demo_120"], "duration": 10.0}
    args.update(changes)
    analysis = args.pop("analysis")

    with pytest.raises(PlanningError, match=message):
        plan(analysis, **args)


def test_an_analysis_without_beats_is_a_planning_error(analyses) -> None:
    analysis = {**analyses["distinct_140"], "beats": []}

    with pytest.raises(PlanningError, match="no beats"):
        plan(analysis, photos=photos(2))
