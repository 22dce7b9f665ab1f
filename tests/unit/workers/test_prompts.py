"""The seven prompt stages and ``compose``: what each stage draws on, and how a
stage can be switched off, given the user's words or the LLM's."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from workers.storyboard.prompts import (
    ACTIONS,
    CHARACTER_NEGATIVE,
    GENERIC_NEGATIVE,
    MAX_PROMPT_WORDS,
    MOVE_WORDS,
    SECTION_MOODS,
    STAGES,
    TIMES,
    CharacterRef,
    Draft,
    ShotContext,
    cinematic,
    compose,
    concept,
    narrative,
    negative_prompt,
    polish,
    scene,
    technical,
    visual,
)
from workers.storyboard.styles import default_styles, preset_from_dict

CINEMATIC = default_styles()["cinematic"]
# One word per vocabulary key, so what a stage picks is known.
PLAIN = preset_from_dict(
    "plain",
    {
        "prompt": ["plain film look", "soft contrast"],
        "negative": ["cartoon", "Blurry"],
        "vocabulary": {
            "settings": ["a quiet harbour"],
            "lighting": ["pale morning light"],
            "palette": ["slate and rust"],
            "texture": ["fine grain"],
            "camera": ["50mm lens"],
        },
        "grade": None,
        "transitions": ["cut"],
        "motion": 0.5,
        "moves": ["zoom_in"],
    },
)
MARA = CharacterRef("Mara", description="red jacket, short silver hair")


def ctx(**changes: Any) -> ShotContext:
    """A scene in the middle of a five-scene video, Mara in it."""
    values: dict[str, Any] = {
        "index": 2,
        "count": 5,
        "start": 8.0,
        "end": 12.0,
        "section": "verse",
        "energy": "mid",
        "move": "zoom_in",
        "motion": 0.5,
        "style": PLAIN,
        "seed": 7,
        "character": MARA,
    }
    values.update(changes)
    return ShotContext(**values)


def draft(**stages: str) -> Draft:
    return Draft(stages=dict(stages))


def phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


# --- concept ----------------------------------------------------------------


def test_concept_uses_the_script_heading_and_first_sentence() -> None:
    shot = ctx(
        script_heading="The chase",
        script_text="Mara runs through the market.  She never looks back! Rain.",
    )

    assert concept(shot, draft()) == "The chase, Mara runs through the market"


def test_concept_uses_the_script_text_alone_without_a_heading() -> None:
    shot = ctx(script_text="A door opens onto the sea. Light floods in.")

    assert concept(shot, draft()) == "A door opens onto the sea"


def test_concept_without_a_script_is_the_character_an_action_and_the_mood() -> None:
    text = concept(ctx(section="Chorus 2", energy="high"), draft())

    assert text.startswith("Mara ")
    assert text.endswith(", " + SECTION_MOODS["chorus"])
    action = text.removeprefix("Mara ").removesuffix(", " + SECTION_MOODS["chorus"])
    assert action in ACTIONS["high"]


@pytest.mark.parametrize("energy", ["calm", "mid", "high"])
def test_concept_picks_its_action_from_the_scenes_energy(energy: str) -> None:
    found = {
        concept(ctx(energy=energy, seed=seed, section=""), draft())
        for seed in range(20)
    }

    actions = {
        t.removeprefix("Mara ").removesuffix(", a moment in the song") for t in found
    }
    assert actions <= set(ACTIONS[energy])
    assert len(actions) > 1  # the seed chooses among them


def test_concept_of_a_scene_without_the_character_is_an_empty_landscape() -> None:
    without = concept(ctx(features_character=False, section="outro"), draft())
    nobody = concept(ctx(character=None, section="intro"), draft())

    assert without == f"a cutaway shot without the character, {SECTION_MOODS['outro']}"
    assert nobody == f"a cutaway shot without the character, {SECTION_MOODS['intro']}"
    assert "Mara" not in without


def test_concept_names_the_character_by_their_token_when_they_have_one() -> None:
    shot = ctx(character=CharacterRef("Mara", token="sks woman"))

    assert concept(shot, draft()).startswith("sks woman ")


# --- scene ------------------------------------------------------------------


def test_scene_finds_the_place_the_script_names_and_adds_a_time() -> None:
    shot = ctx(script_text="Mara waits in a neon-lit arcade, humming along.")

    text = scene(shot, draft())

    assert text.startswith("in a neon-lit arcade ")
    assert text.removeprefix("in a neon-lit arcade ") in TIMES


def test_scene_looks_for_the_place_in_the_heading_too() -> None:
    shot = ctx(script_heading="Under the old bridge", script_text="Mara waits.")

    assert scene(shot, draft()).startswith("Under the old bridge ")


def test_scene_adds_no_second_time_when_the_place_has_one() -> None:
    shot = ctx(script_text="They meet on a rooftop at dusk. Nobody speaks.")

    assert scene(shot, draft()) == "on a rooftop at dusk"


def test_scene_without_a_place_in_the_script_takes_a_style_setting() -> None:
    assert scene(ctx(script_text="Mara smiles."), draft()).startswith(
        "a quiet harbour "
    )
    for seed in range(10):
        text = scene(ctx(style=CINEMATIC, seed=seed), draft())
        setting = next(s for s in CINEMATIC.words("settings") if text.startswith(s))
        rest = text.removeprefix(setting).strip()
        # A setting that says its time ("... at night") gets no other.
        said = any(t.split()[-1] in setting for t in TIMES)
        assert rest == "" if said else rest in TIMES


def test_scene_adds_a_time_to_a_place_whose_name_merely_contains_a_time_word() -> None:
    text = scene(ctx(script_text="She dances in a nightclub."), draft())

    assert text.removeprefix("in a nightclub ") in TIMES


# --- visual -------------------------------------------------------------------


def test_visual_names_the_character_with_the_description_and_the_styles_words() -> None:
    text = visual(ctx(), draft())

    assert text == (
        "Mara, red jacket, short silver hair, same face and outfit as the"
        " reference photos, pale morning light, slate and rust, fine grain"
    )


def test_visual_does_not_name_the_character_the_concept_already_named() -> None:
    text = visual(ctx(), draft(concept="mara walking slowly, a story moment"))

    assert "Mara" not in text
    assert text.startswith("red jacket, short silver hair")


def test_visual_of_a_scene_without_the_character_is_only_light_and_colour() -> None:
    text = visual(ctx(features_character=False), draft())

    assert text == "pale morning light, slate and rust, fine grain"


def test_visual_draws_its_light_palette_and_texture_from_the_style() -> None:
    text = visual(ctx(style=CINEMATIC, character=None), draft())

    lighting, palette, texture = phrases(text)
    assert lighting in CINEMATIC.words("lighting")
    assert palette in CINEMATIC.words("palette")
    assert texture in CINEMATIC.words("texture")


# --- cinematic -------------------------------------------------------------------


@pytest.mark.parametrize("move", sorted(MOVE_WORDS))
def test_cinematic_puts_the_move_into_camera_words(move: str) -> None:
    text = cinematic(ctx(move=move), draft())

    assert phrases(text) == ["medium shot", MOVE_WORDS[move], "50mm lens"]


@pytest.mark.parametrize(
    ("energy", "size"),
    [("calm", "close-up"), ("mid", "medium shot"), ("high", "wide dynamic shot")],
)
def test_cinematic_sizes_the_shot_by_the_energy(energy: str, size: str) -> None:
    assert phrases(cinematic(ctx(energy=energy), draft()))[0] == size


@pytest.mark.parametrize(
    "changes", [{"index": 0}, {"section": "intro"}, {"section": "Outro"}]
)
def test_cinematic_opens_with_an_establishing_wide_shot(changes: dict) -> None:
    text = cinematic(ctx(energy="calm", **changes), draft())

    assert phrases(text)[0] == "establishing wide shot"


def test_cinematic_shows_a_scene_without_the_character_in_a_wide_shot() -> None:
    for changes in ({}, {"index": 0}, {"energy": "calm"}):
        text = cinematic(ctx(features_character=False, **changes), draft())
        assert phrases(text)[0] == "wide shot"


def test_cinematic_skips_an_unknown_move_and_takes_the_styles_lens() -> None:
    text = cinematic(ctx(move="barrel_roll", style=CINEMATIC), draft())

    size, lens = phrases(text)
    assert size == "medium shot"
    assert lens in CINEMATIC.words("camera")


# --- narrative ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "act"),
    [
        (0, "the opening scene"),
        (1, "the story setting up"),
        (5, "the story rising to its peak"),
        (8, "the story resolving"),
        (9, "the final scene"),
    ],
)
def test_narrative_places_the_scene_in_the_story(index: int, act: str) -> None:
    assert narrative(ctx(index=index, count=10), draft()) == act


def test_narrative_of_a_single_scene_video_is_one_moment() -> None:
    assert narrative(ctx(index=0, count=1), draft()) == "a single continuous moment"


def test_narrative_follows_the_previous_scene() -> None:
    text = narrative(ctx(index=9, count=10, previous="a door opens"), draft())

    assert text == "the final scene, following a door opens"


# --- technical ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "frame"),
    [
        (1920, 1080, "widescreen 16:9 frame"),
        (1080, 1920, "vertical 9:16 frame"),
        (1080, 1080, "square frame"),
        (1080, 1200, "square frame"),  # 9:10 is near enough square
    ],
)
def test_technical_names_the_frame_shape(width: int, height: int, frame: str) -> None:
    text = technical(ctx(width=width, height=height), draft())

    assert phrases(text)[0] == frame


def test_technical_gives_a_video_model_motion_and_duration() -> None:
    text = technical(
        ctx(model_kind="video", start=8.0, end=11.25, fps=24, motion=0.8), draft()
    )

    assert phrases(text) == [
        "widescreen 16:9 frame",
        "highly detailed",
        "sharp focus",
        "energetic natural motion",
        "3.2 seconds at 24 fps",
    ]


@pytest.mark.parametrize(
    ("motion", "word"), [(0.1, "subtle"), (0.5, "smooth"), (0.9, "energetic")]
)
def test_technical_motion_words_follow_the_motion_amount(
    motion: float, word: str
) -> None:
    text = technical(ctx(model_kind="video", motion=motion), draft())

    assert f"{word} natural motion" in phrases(text)


@pytest.mark.parametrize("kind", ["photo", "image"])
def test_technical_gives_a_still_model_no_motion_terms(kind: str) -> None:
    text = technical(ctx(model_kind=kind), draft())

    assert "motion" not in text
    assert "seconds" not in text and "fps" not in text


# --- polish ------------------------------------------------------------------------


def test_polish_keeps_each_phrase_once_whatever_its_case() -> None:
    text = polish(
        ctx(),
        draft(
            concept="Mara at the harbour, Golden Hour",
            scene="golden hour, a quiet harbour",
            visual="GOLDEN HOUR, slate and rust, Slate and Rust",
            technical="widescreen 16:9 frame",
        ),
    )

    lowered = [p.lower() for p in phrases(text)]
    assert len(lowered) == len(set(lowered))
    assert lowered.count("golden hour") == 1
    assert "Golden Hour" in phrases(text)  # the first spelling is kept


def test_polish_carries_the_style_dna_and_the_technical_terms() -> None:
    text = polish(
        ctx(style=CINEMATIC),
        draft(concept="Mara waits", technical="square frame, highly detailed"),
    )

    for fragment in CINEMATIC.prompt:
        assert fragment in phrases(text)
    assert phrases(text)[-2:] == ["square frame", "highly detailed"]


def test_polish_puts_the_character_first_when_no_stage_named_them() -> None:
    text = polish(ctx(), draft(concept="a door opens", scene="a quiet harbour"))

    assert phrases(text)[0] == "Mara"


def test_polish_does_not_add_the_character_to_a_scene_without_them() -> None:
    text = polish(
        ctx(features_character=False),
        draft(concept="a cutaway shot without the character"),
    )

    assert "Mara" not in text


def test_polish_cuts_a_long_prompt_to_the_word_limit_keeping_technical_terms() -> None:
    long_story = ", ".join(f"detail number {i} of the story" for i in range(40))
    tech = "widescreen 16:9 frame, highly detailed, sharp focus"

    text = polish(ctx(), draft(concept=long_story, technical=tech))

    assert len(text.split()) <= MAX_PROMPT_WORDS
    assert phrases(text)[-3:] == phrases(tech)
    assert all(fragment in phrases(text) for fragment in PLAIN.prompt)
    assert "detail number 0 of the story" in phrases(text)  # the story's start
    assert "detail number 39 of the story" not in text  # its tail goes
    assert "Mara" in phrases(text)


# --- compose ---------------------------------------------------------------------


def test_compose_gives_the_same_prompt_for_the_same_scene() -> None:
    shot = ctx(style=CINEMATIC, previous="Mara waits")

    assert compose(shot) == compose(replace(shot))


def test_compose_with_another_seed_makes_another_choice() -> None:
    prompts = {compose(ctx(style=CINEMATIC, seed=seed)).prompt for seed in range(8)}

    assert len(prompts) > 1


def test_compose_runs_every_stage_from_its_template_by_default() -> None:
    result = compose(ctx(style=CINEMATIC, previous="a door opens"))

    assert tuple(result.stages) == STAGES
    assert set(result.sources.values()) == {"template"}
    assert all(result.stages[s] for s in STAGES)
    assert result.prompt == result.stages["polish"]
    assert len(result.prompt.split()) <= MAX_PROMPT_WORDS
    assert result.to_dict()["prompt"] == result.prompt


def test_compose_leaves_a_stage_that_is_off_empty() -> None:
    result = compose(ctx(), off=["scene", "narrative"])

    assert result.stages["scene"] == "" and result.sources["scene"] == "off"
    assert result.stages["narrative"] == ""
    assert result.sources["narrative"] == "off"
    assert "quiet harbour" not in result.prompt
    assert "the story setting up" not in result.prompt
    assert "pale morning light" in result.prompt  # the others still run


def test_compose_keeps_the_users_text_as_written() -> None:
    words = "Mara feeds the MOON to a paper crane"

    result = compose(ctx(), user={"concept": words, "scene": "  "})

    assert result.stages["concept"] == words
    assert result.sources["concept"] == "user"
    assert words in phrases(result.prompt)
    # Blank text is no text: the template writes the stage.
    assert result.sources["scene"] == "template"


def test_compose_collapses_the_whitespace_of_the_users_text() -> None:
    result = compose(ctx(), user={"scene": "on the  pier\n at   noon"})

    assert result.stages["scene"] == "on the pier at noon"


def test_compose_takes_the_llms_text_for_its_stages_only() -> None:
    llm = {
        "concept": "Mara chases a kite across the sand",
        "scene": "on a windy beach at noon",
        "narrative": "the turning point",
        "visual": "IGNORED visual words",
        "technical": "IGNORED technical words",
    }

    result = compose(ctx(), llm=llm)

    for stage in ("concept", "scene", "narrative"):
        assert result.stages[stage] == llm[stage]
        assert result.sources[stage] == "llm"
    for stage in ("visual", "technical", "cinematic", "polish"):
        assert result.sources[stage] == "template"
    assert "IGNORED" not in result.prompt
    assert "IGNORED" not in result.stages["visual"]


def test_compose_prefers_the_users_text_to_the_llms() -> None:
    result = compose(
        ctx(), user={"concept": "the user's idea"}, llm={"concept": "the LLM's idea"}
    )

    assert result.stages["concept"] == "the user's idea"
    assert result.sources["concept"] == "user"


def test_compose_with_polish_off_joins_the_stages_as_they_are() -> None:
    result = compose(ctx(previous="Mara waits"), off=["polish"])

    expected = ", ".join(result.stages[s] for s in STAGES if s != "polish")
    assert result.prompt == expected
    assert result.stages["polish"] == "" and result.sources["polish"] == "off"


def test_compose_with_polish_off_leaves_out_empty_stages() -> None:
    result = compose(ctx(), off=["polish", "scene"])

    assert ", ," not in result.prompt
    assert result.prompt.startswith(result.stages["concept"] + ", ")


@pytest.mark.parametrize(
    "kwargs", [{"off": ["colour"]}, {"user": {"mood": "happy"}}, {"off": ["Scene"]}]
)
def test_compose_refuses_unknown_stage_names(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="unknown prompt stages"):
        compose(ctx(), **kwargs)


def test_compose_negative_carries_the_styles_and_the_character_negatives() -> None:
    result = compose(ctx(style=CINEMATIC))

    negatives = phrases(result.negative)
    assert set(CINEMATIC.negative) <= set(negatives)
    assert set(GENERIC_NEGATIVE) <= set(negatives)
    assert set(CHARACTER_NEGATIVE) <= set(negatives)


@pytest.mark.parametrize(
    "changes", [{"features_character": False}, {"character": None}]
)
def test_compose_negative_has_no_character_terms_without_the_character(
    changes: dict,
) -> None:
    result = compose(ctx(style=CINEMATIC, **changes))

    negatives = phrases(result.negative)
    assert set(CINEMATIC.negative) <= set(negatives)
    assert not set(CHARACTER_NEGATIVE) & set(negatives)


def test_negative_prompt_lists_each_term_once_whatever_its_case() -> None:
    # PLAIN's "Blurry" is GENERIC_NEGATIVE's "blurry"; minimal's "text" too.
    for style in (PLAIN, default_styles()["minimal"]):
        negatives = [n.lower() for n in phrases(negative_prompt(ctx(style=style)))]
        assert len(negatives) == len(set(negatives))
        assert "blurry" in negatives and "text" in negatives


# --- the character in the final prompt ---------------------------------------------


def test_the_composed_prompt_names_the_character_with_their_description() -> None:
    result = compose(ctx())

    assert result.prompt.startswith("Mara ")
    assert "red jacket" in phrases(result.prompt)
    assert len(re.findall(r"\bMara\b", result.prompt)) == 1


def test_the_composed_prompt_names_the_character_once_after_a_scene_with_them() -> None:
    result = compose(ctx(previous="Mara dancing with abandon, the emotional peak"))

    assert len(re.findall(r"\bMara\b", result.prompt)) == 1


def test_a_scene_without_the_character_does_not_name_them_after_one_with_them() -> None:
    result = compose(
        ctx(features_character=False, previous="Mara dancing, the emotional peak")
    )

    assert result.stages["concept"].startswith("a cutaway shot without the character")
    assert "Mara" not in result.prompt


def test_a_long_concept_gives_up_its_tail_rather_than_the_camera_words() -> None:
    long_concept = ", ".join(f"detail number {i} of the opening" for i in range(9))
    result = compose(
        ctx(move="push_in", previous="Mara walking"),
        user={"concept": long_concept},
    )

    kept = phrases(result.prompt)
    assert "push in towards the face" in kept
    assert "medium shot" in kept
    assert "detail number 8 of the opening" not in kept  # its tail went
    assert len(result.prompt.split()) <= MAX_PROMPT_WORDS
    # What stays keeps the stages' order: the story first, then the camera.
    assert kept.index("detail number 0 of the opening") < kept.index(
        "push in towards the face"
    )


def test_narrative_takes_only_what_happened_before_not_its_mood() -> None:
    after_action = narrative(
        ctx(previous="Mara walking slowly, an opening image that sets the mood"),
        draft(),
    )
    after_cutaway = narrative(
        ctx(previous="a cutaway shot without the character, a story moment"), draft()
    )

    assert after_action == "the story rising to its peak, following walking slowly"
    assert after_cutaway == "the story rising to its peak, after a cutaway"
