"""Style presets and the transition table: the shipped YAML files load, every
name in them is one the renderer knows, a bad preset is refused with a message
naming its field, and the join table steers the beat-sync planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workers.assembly.beatsync import JOIN_KINDS, plan_beat_sync
from workers.assembly.grading import GRADES
from workers.assembly.motion import MOVES
from workers.assembly.transitions import TRANSITIONS
from workers.storyboard.styles import (
    VOCABULARY_KEYS,
    StyleError,
    StylePreset,
    default_styles,
    join_preferences,
    load_join_preferences,
    load_moods,
    load_styles,
    preset_from_dict,
)

REQUIRED_PRESETS = (
    "cinematic", "anime", "neon_noir", "vintage_film", "watercolor", "documentary",
    "dreamy", "cyberpunk", "fantasy", "minimal", "hip_hop", "retro_vhs",
)  # fmt: skip
STYLES = default_styles()


def _valid(**changes: Any) -> dict[str, Any]:
    """A preset's YAML form that loads, with ``changes`` on top."""
    data: dict[str, Any] = {
        "name": "Test look",
        "description": "For the tests.",
        "prompt": ["test still", "soft light"],
        "negative": ["blurry"],
        "vocabulary": {"settings": ["a quiet room"], "lighting": ["window light"]},
        "grade": {"preset": "warm", "intensity": 0.5},
        "transitions": ["cut", "crossfade"],
        "motion": 0.4,
        "moves": ["zoom_in", "pan_left"],
    }
    data.update(changes)
    return data


# --- the shipped presets ---------------------------------------------------------


def test_the_shipped_presets_load_with_at_least_the_twelve_named_looks() -> None:
    styles = load_styles()

    assert len(styles) >= 12
    assert set(REQUIRED_PRESETS) <= set(styles)
    assert all(isinstance(p, StylePreset) for p in styles.values())
    assert all(key == preset.key for key, preset in styles.items())


@pytest.mark.parametrize("key", sorted(STYLES))
def test_each_preset_has_prompt_fragments_a_negative_and_a_name(key: str) -> None:
    preset = STYLES[key]

    assert preset.name and preset.description
    assert preset.prompt and all(p.strip() for p in preset.prompt)
    assert preset.negative and all(n.strip() for n in preset.negative)
    assert preset.dna == ", ".join(preset.prompt)
    assert set(preset.vocabulary) <= set(VOCABULARY_KEYS)
    # The prompt stages draw on these; an empty list would leave holes.
    for words in ("settings", "lighting", "palette", "texture", "camera"):
        assert preset.words(words), f"{key} has no {words}"


@pytest.mark.parametrize("key", sorted(STYLES))
def test_each_preset_grades_with_a_known_grade_within_intensity(key: str) -> None:
    preset = STYLES[key]

    if key == "documentary":
        assert preset.grade is None
    else:
        assert preset.grade in GRADES
        assert 0.0 < preset.grade_intensity <= 1.0


@pytest.mark.parametrize("key", sorted(STYLES))
def test_each_preset_joins_moves_and_motion_are_the_renderers(key: str) -> None:
    preset = STYLES[key]

    assert preset.transitions
    assert all(t in TRANSITIONS for t in preset.transitions)
    assert preset.moves
    assert all(m in MOVES for m in preset.moves)
    assert 0.0 <= preset.motion <= 1.0


@pytest.mark.parametrize("key", sorted(STYLES))
def test_a_preset_survives_a_round_trip_through_its_dict_form(key: str) -> None:
    preset = STYLES[key]

    assert preset_from_dict(key, preset.to_dict()) == preset


def test_the_documentary_look_has_no_grade_in_its_dict_form() -> None:
    assert STYLES["documentary"].to_dict()["grade"] is None
    assert STYLES["cinematic"].to_dict()["grade"] == {
        "preset": "cinematic_teal_orange",
        "intensity": 0.7,
    }


# --- the transition table -----------------------------------------------------


def test_the_join_table_names_every_join_kind_with_known_transitions() -> None:
    table = load_join_preferences()

    assert set(table) == set(JOIN_KINDS)
    for kind, names in table.items():
        assert names, kind
        assert all(name in TRANSITIONS for name in names), kind
    assert join_preferences() == table
    assert table["hard"] == ("cut",)


def test_the_mood_menus_load_and_name_known_transitions() -> None:
    moods = load_moods()

    assert {"hard", "punchy", "soft", "dramatic", "graphic"} <= set(moods)
    for names in moods.values():
        assert all(name in TRANSITIONS for name in names)


def test_a_join_table_with_an_unknown_transition_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "transitions.yaml"
    path.write_text("joins:\n  hard: [cut, spin_cycle]\nmoods:\n  hard: [cut]\n")

    with pytest.raises(StyleError, match="joins.hard.*spin_cycle"):
        load_join_preferences(path)


def test_a_join_table_with_an_unknown_join_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "transitions.yaml"
    path.write_text("joins:\n  sideways: [cut]\n")

    with pytest.raises(StyleError, match="sideways"):
        load_join_preferences(path)


def test_a_transition_file_without_joins_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "transitions.yaml"
    path.write_text("moods:\n  hard: [cut]\n")

    with pytest.raises(StyleError, match="'joins'"):
        load_join_preferences(path)


# --- refusing bad presets ---------------------------------------------------------


def test_a_valid_preset_dict_loads_with_its_values() -> None:
    preset = preset_from_dict("test", _valid())

    assert preset.key == "test"
    assert preset.prompt == ("test still", "soft light")
    assert preset.grade == "warm" and preset.grade_intensity == 0.5
    assert preset.words("settings") == ("a quiet room",)
    assert preset.words("camera") == ()


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        (
            {"grade": {"preset": "sepia_dream", "intensity": 0.5}},
            "grade",
            "sepia_dream",
        ),
        ({"grade": "warm"}, "grade", "preset"),
        ({"grade": {"preset": "warm", "intensity": 2}}, "grade", "intensity"),
        ({"transitions": ["cut", "spin_cycle"]}, "transitions", "spin_cycle"),
        ({"moves": ["zoom_in", "barrel_roll"]}, "moves", "barrel_roll"),
        ({"motion": 1.5}, "motion", "between 0 and 1"),
        ({"motion": -0.1}, "motion", "between 0 and 1"),
        ({"colour": "red"}, "unknown keys", "colour"),
        ({"vocabulary": {"smell": ["rain"]}}, "vocabulary", "smell"),
        ({"vocabulary": {"lighting": []}}, "vocabulary.lighting", "at least one"),
        ({"vocabulary": ["rain"]}, "vocabulary", "mapping"),
        ({"prompt": []}, "prompt", "at least one"),
        ({"prompt": ["fine", "  "]}, "prompt", "words or phrases"),
        ({"prompt": None}, "prompt", "words or phrases"),
    ],
)
def test_a_bad_preset_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, detail: str
) -> None:
    with pytest.raises(StyleError) as caught:
        preset_from_dict("broken", _valid(**changes))

    message = str(caught.value)
    assert "'broken'" in message
    assert field in message
    assert detail in message


def test_a_preset_without_a_prompt_is_refused() -> None:
    data = _valid()
    del data["prompt"]

    with pytest.raises(StyleError, match="prompt"):
        preset_from_dict("broken", data)


def test_a_preset_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(StyleError, match="'broken'.*mapping"):
        preset_from_dict("broken", ["cinematic"])  # type: ignore[arg-type]


# --- load_styles on other files -----------------------------------------------------


def test_load_styles_reads_a_file_of_presets_in_its_order(tmp_path: Path) -> None:
    path = tmp_path / "styles.yaml"
    path.write_text(
        "second:\n  prompt: [b]\n  transitions: [cut]\n"
        "first:\n  prompt: [a]\n  grade: null\n"
    )

    styles = load_styles(path)

    assert list(styles) == ["second", "first"]
    assert styles["first"].grade is None
    assert styles["second"].name == "second"  # the key when no name is given


def test_load_styles_on_bad_yaml_is_a_style_error(tmp_path: Path) -> None:
    path = tmp_path / "styles.yaml"
    path.write_text("cinematic:\n  prompt: [unclosed, list\n  motion: 0.5\n")

    with pytest.raises(StyleError, match="styles.yaml"):
        load_styles(path)


@pytest.mark.parametrize("text", ["", "- just\n- a list\n"])
def test_load_styles_on_a_file_without_presets_is_a_style_error(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "styles.yaml"
    path.write_text(text)

    with pytest.raises(StyleError, match="mapping of style presets"):
        load_styles(path)


def test_load_styles_names_the_bad_preset_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "styles.yaml"
    path.write_text("good:\n  prompt: [a]\nbad:\n  prompt: [b]\n  motion: 3\n")

    with pytest.raises(StyleError, match="'bad'.*motion"):
        load_styles(path)


# --- the join table drives the beat-sync planner --------------------------------------

BPM = 120.0
BEAT = 60.0 / BPM
BAR = 4 * BEAT
HOP = 0.05
# Quiet intro, mid verse, loud chorus, calm outro: every kind of join.
LAYOUT = (
    ("intro", 4, -30.0),
    ("verse", 8, -22.0),
    ("chorus", 8, -12.0),
    ("verse", 8, -22.0),
    ("chorus", 4, -12.0),
    ("outro", 8, -30.0),
)


def _analysis() -> dict[str, Any]:
    sections, values = [], []
    t = 0.0
    for label, bars, lufs in LAYOUT:
        end = t + bars * BAR
        sections.append({"start": t, "end": end, "label": label})
        values += [lufs] * round(bars * BAR / HOP)
        t = end
    beats = [i * BEAT for i in range(round(t / BEAT))]
    return {
        "duration": t,
        "bpm": BPM,
        "meter": 4,
        "beats": beats,
        "downbeats": beats[::4],
        "sections": sections,
        "energy": {"hop_s": HOP, "values": values},
    }


ANALYSIS = _analysis()


def test_with_the_join_table_a_palette_gets_its_own_transitions() -> None:
    # Not one of beatsync's built-in preferences, all of them in the table.
    palette = ["cut", "pixelize", "slide_left", "dip_to_white"]
    duration = float(ANALYSIS["duration"])

    with_table = plan_beat_sync(
        ANALYSIS,
        duration=duration,
        fps=25,
        palette=palette,
        preferences=join_preferences(),
    )
    built_in = plan_beat_sync(ANALYSIS, duration=duration, fps=25, palette=palette)

    kinds = {c.kind for c in with_table}
    assert kinds <= {*palette, "crossfade"}  # crossfade: the soft fallback
    assert {"pixelize", "slide_left", "dip_to_white"} <= kinds
    # The same cuts, joined differently: the table is what chose them.
    assert [c.frame for c in with_table] == [c.frame for c in built_in]
    assert not {"pixelize", "slide_left", "dip_to_white"} & {c.kind for c in built_in}


@pytest.mark.parametrize("key", sorted(STYLES))
def test_every_style_palette_with_the_join_table_keeps_to_the_palette(
    key: str,
) -> None:
    palette = STYLES[key].transitions

    cuts = plan_beat_sync(
        ANALYSIS,
        duration=float(ANALYSIS["duration"]),
        fps=30,
        palette=palette,
        preferences=join_preferences(),
    )

    assert cuts
    assert {c.kind for c in cuts} <= {*palette, "cut", "crossfade"}
