from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from workers.assembly.motion import MOVES
from workers.assembly.timeline import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    Clip,
    CustomMove,
    Karaoke,
    Output,
    Timeline,
    TimelineError,
    Watermark,
    load_timeline,
    timeline_json_schema,
)

VALID: dict[str, Any] = {
    "version": 1,
    "output": {"preset": "youtube", "format": "mp4", "quality": "high"},
    "audio": [
        {"file": "song.wav", "role": "music", "gain_db": -3, "fade_out": 2},
        {"file": "/abs/voice.wav", "role": "voice", "start": 1.0, "offset": 0.5},
    ],
    "clips": [
        {
            "source": {"kind": "still", "file": "images/a.png"},
            "start": 0,
            "duration": 4,
            "move": "zoom_in",
            "transition": {"type": "crossfade", "duration": 0.5},
        },
        {
            "source": {"kind": "video", "file": "b.mp4"},
            "start": 3.5,
            "duration": 4,
            "in": 1.0,
            "out": 9.0,
            "speed": 2.0,
            "transition": {"type": "cut", "duration": 0},
        },
        {
            "source": {"kind": "still", "file": "c.jpg"},
            "start": 7.5,
            "duration": 3,
            "move": {
                "from": {"x": 0.2, "y": 0.3, "zoom": 1.0},
                "to": {"x": 0.6, "y": 0.5, "zoom": 1.4},
            },
        },
    ],
    "grade": {"preset": "cinematic_teal_orange", "intensity": 0.8},
    "text": [
        {"kind": "subtitles", "file": "lyrics.srt"},
        {
            "kind": "title",
            "text": "Nano Banana",
            "start": 0,
            "end": 2.5,
            "position": "center",
            "style": "bold",
        },
        {
            "kind": "karaoke",
            "words": [
                {"word": "la", "start": 1.0, "end": 1.4},
                {"word": "la", "start": 1.4, "end": 2.0},
            ],
        },
    ],
    "cuts": [4.0, 7.5],
    "beats": [0.5, 1.0, 1.5],
}


def doc(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(VALID)
    d.update(changes)
    return d


def errors_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(TimelineError) as info:
        load_timeline(data)
    assert isinstance(info.value, ValueError)
    return info.value.errors


def paths_of(data: Any) -> list[str]:
    return [p for p, _ in errors_of(data)]


# -- valid documents --


def test_valid_example_loads() -> None:
    t = load_timeline(VALID)
    assert isinstance(t, Timeline)
    assert (t.output.width, t.output.height, t.fps) == (1920, 1080, 30)
    assert t.duration == pytest.approx(10.5)
    assert [c.start for c in t.clips] == [0, 3.5, 7.5]
    assert isinstance(t.clips[2].move, CustomMove)
    assert isinstance(t.text[2], Karaoke)
    assert t.audio[1].role == "voice"
    with pytest.raises(AttributeError):
        t.clips[0].start = 1.0  # type: ignore[misc]


def test_round_trip() -> None:
    t = load_timeline(VALID)
    d = t.to_dict()
    assert load_timeline(d) == t
    assert load_timeline(json.dumps(d)) == t
    assert load_timeline(d).to_dict() == d


def test_loads_from_json_text_and_file(tmp_path: Path) -> None:
    f = tmp_path / "timeline.json"
    f.write_text(json.dumps(VALID))
    assert load_timeline(f) == load_timeline(VALID)
    assert load_timeline(str(f)) == load_timeline(json.dumps(VALID))


def test_explicit_output_and_defaults() -> None:
    d = doc(output={"width": 640, "height": 360, "fps": 24, "quality": 23})
    t = load_timeline(d)
    assert (t.output.width, t.output.height, t.fps, t.output.quality) == (
        640,
        360,
        24,
        23,
    )
    assert t.output.format == "mp4" and t.output.preset is None
    assert load_timeline(t.to_dict()) == t


def test_frame_of() -> None:
    t = load_timeline(VALID)
    assert t.frame_of(0) == 0
    assert t.frame_of(3.5) == 105
    assert t.frame_of(1 / 30 * 7 + 1e-9) == 7


def test_output_duration_may_trim() -> None:
    d = doc()
    d["output"]["duration"] = 9.0
    assert load_timeline(d).duration == 9.0
    d["output"]["duration"] = 20.0
    assert "output.duration" in paths_of(d)


# -- invalid documents: one kind each, with its precise path --


def test_wrong_version() -> None:
    assert paths_of(doc(version=2)) == ["version"]
    assert paths_of(doc(version=True)) == ["version"]
    d = doc()
    del d["version"]
    assert paths_of(d) == ["version"]


def test_unknown_keys_are_named() -> None:
    d = doc(colour="red")
    d["clips"][1]["sped"] = 2
    errs = errors_of(d)
    assert [p for p, _ in errs] == ["colour", "clips[1].sped"]
    assert "unknown key 'sped'" in errs[1][1]
    assert "clips[1].sped: unknown key" in str(TimelineError(errs))


def test_bad_preset() -> None:
    d = doc()
    d["output"]["preset"] = "cinema"
    errs = errors_of(d)
    assert errs[0][0] == "output.preset" and "youtube" in errs[0][1]


def test_preset_and_explicit_size_conflict() -> None:
    d = doc()
    d["output"]["width"] = 640
    assert "output.width" in paths_of(d)


def test_odd_size_and_bad_fps() -> None:
    d = doc(output={"width": 641, "height": 360, "fps": 0})
    assert paths_of(d) == ["output.width", "output.fps"]
    assert "even" in errors_of(d)[0][1]


def test_bad_format_and_quality() -> None:
    d = doc(output={"preset": "square", "format": "avi", "quality": "ultra"})
    assert paths_of(d) == ["output.format", "output.quality"]
    d = doc(output={"preset": "square", "quality": 99})
    assert paths_of(d) == ["output.quality"]


def test_negative_time() -> None:
    d = doc()
    d["audio"][0]["fade_in"] = -1
    d["clips"][1]["in"] = -0.5
    assert paths_of(d) == ["clips[1].in", "audio[0].fade_in"]


def test_non_finite_time() -> None:
    d = doc()
    d["beats"] = [0.5, float("inf")]
    assert paths_of(d) == ["beats[1]"]
    with pytest.raises(TimelineError, match="NaN"):
        load_timeline('{"version": 1, "cuts": [NaN]}')


def test_unknown_transition() -> None:
    d = doc()
    d["clips"][0]["transition"]["type"] = "star_wipe"
    errs = errors_of(d)
    assert errs[0][0] == "clips[0].transition.type"
    assert "crossfade" in errs[0][1]


def test_transition_longer_than_a_clip() -> None:
    d = doc()
    d["clips"][0]["transition"]["duration"] = 4.5
    errs = errors_of(d)
    assert errs[0] == (
        "clips[0].transition.duration",
        "must be > 0 and shorter than both clips (got 4.5)",
    )
    assert "clips[0].transition.duration: must be > 0 and shorter than both" in str(
        TimelineError(errs)
    )


def test_transition_rules() -> None:
    d = doc()
    d["clips"][1]["transition"]["duration"] = 0.5  # a cut has no overlap
    d["clips"][2]["transition"] = {"type": "crossfade", "duration": 0.5}  # last
    paths = paths_of(d)
    assert "clips[1].transition.duration" in paths
    assert "clips[2].transition" in paths


def test_gap_between_clips() -> None:
    d = doc()
    d["clips"][2]["start"] = 8.0
    errs = errors_of(d)
    assert errs == [(errs[0][0], errs[0][1])] and errs[0][0] == "clips[2].start"
    assert "gap" in errs[0][1] and "7.5" in errs[0][1]


def test_overlapping_clips() -> None:
    d = doc()
    d["clips"][1]["start"] = 3.0
    d["clips"][1]["out"] = 9.0
    errs = errors_of(d)
    assert errs[0][0] == "clips[1].start" and "overlap" in errs[0][1]


def test_first_clip_starts_at_zero() -> None:
    d = doc()
    for c in d["clips"]:
        c["start"] += 1
    assert paths_of(d) == ["clips[0].start"]


def test_video_out_must_match_duration() -> None:
    d = doc()
    d["clips"][1]["out"] = 6.0
    assert paths_of(d) == ["clips[1].out"]


def test_still_and_video_fields() -> None:
    d = doc()
    d["clips"][0]["speed"] = 2
    d["clips"][1]["move"] = "zoom_in"
    d["clips"][2]["move"] = "spin"
    assert paths_of(d) == ["clips[0].speed", "clips[1].move", "clips[2].move"]


def test_custom_move_bounds() -> None:
    d = doc()
    d["clips"][2]["move"]["from"]["x"] = 1.5
    d["clips"][2]["move"]["to"]["zoom"] = 0.5
    assert paths_of(d) == ["clips[2].move.from.x", "clips[2].move.to.zoom"]


def test_overlapping_karaoke_words() -> None:
    d = doc()
    d["text"][2]["words"][1]["start"] = 1.2
    errs = errors_of(d)
    assert errs[0][0] == "text[2].words[1].start" and "overlap" in errs[0][1]


def test_text_rules() -> None:
    d = doc()
    d["text"][0]["file"] = "lyrics.txt"
    d["text"][1]["end"] = 0
    d["text"].append({"kind": "banner"})
    assert paths_of(d) == ["text[0].file", "text[1].end", "text[3].kind"]


@pytest.mark.parametrize(
    "url",
    ["http://example.com/a.png", "https://x/y.png", "file:///tmp/a.png", "data:x"],
)
def test_url_as_a_file(url: str) -> None:
    d = doc()
    d["clips"][0]["source"]["file"] = url
    errs = errors_of(d)
    assert errs[0][0] == "clips[0].source.file" and "URL" in errs[0][1]


def test_nul_or_newline_in_path() -> None:
    d = doc()
    d["audio"][0]["file"] = "a\nb.wav"
    d["grade"] = {"cube": "lut\x00.cube"}
    assert paths_of(d) == ["audio[0].file", "grade.cube"]


def test_grade_rules() -> None:
    assert paths_of(doc(grade={"preset": "not valid!"})) == ["grade.preset"]
    assert paths_of(doc(grade={"preset": "sepia"})) == ["grade.preset"]
    both = {"preset": "noir", "cube": "b.cube"}
    assert paths_of(doc(grade=both)) == ["grade"]
    too_much = {"preset": "noir", "intensity": 2}
    assert paths_of(doc(grade=too_much)) == ["grade.intensity"]
    assert load_timeline(doc(grade={"cube": "luts/film.cube"})).grade is not None


def test_wrong_types() -> None:
    d = doc(clips={"source": "a.png"}, cuts="4.0")
    d["output"]["quality"] = 1.5
    d["audio"][0]["gain_db"] = "loud"
    d["beats"] = [1.0, True]
    errs = dict(errors_of(d))
    assert set(errs) == {
        "clips",
        "cuts",
        "output.quality",
        "audio[0].gain_db",
        "beats[1]",
    }
    assert "must be an array" in errs["clips"]
    assert "must be a number" in errs["beats[1]"]
    assert "must be an object" in str(errors_of(doc(output=[])))
    assert paths_of([1, 2]) == [""]


def test_empty_clips_and_missing_fields() -> None:
    assert paths_of(doc(clips=[])) == ["clips"]
    d = doc()
    del d["clips"][0]["duration"]
    del d["clips"][1]["source"]["kind"]
    assert paths_of(d) == ["clips[0].duration", "clips[1].source.kind"]


def test_descending_beats() -> None:
    assert paths_of(doc(beats=[1.0, 0.5])) == ["beats[1]"]


def test_several_errors_reported_together() -> None:
    d = doc(version=3)
    d["output"]["preset"] = "nope"
    d["clips"][0]["transition"]["type"] = "star_wipe"
    d["clips"][2]["source"]["file"] = "http://x/c.jpg"
    d["text"][2]["words"][1]["start"] = 1.2
    with pytest.raises(TimelineError) as info:
        load_timeline(d)
    paths = [p for p, _ in info.value.errors]
    assert paths == [
        "version",
        "output.preset",
        "clips[0].transition.type",
        "clips[2].source.file",
        "text[2].words[1].start",
    ]
    message = str(info.value)
    assert message.startswith("5 problems")
    assert all(p in message for p in paths)


def test_bad_json_text() -> None:
    assert paths_of("{not json") == [""]


# -- JSON Schema --


def test_json_schema_accepts_valid_examples() -> None:
    schema = timeline_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(VALID)
    validator.validate(load_timeline(VALID).to_dict())
    validator.validate(doc(output={"width": 640, "height": 360, "fps": 24}))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(version=2),
        lambda d: d.update(colour="red"),
        lambda d: d["output"].update(preset="cinema"),
        lambda d: d.update(output={"width": 641, "height": 360, "fps": 24}),
        lambda d: d["clips"][0]["transition"].update(type="star_wipe"),
        lambda d: d["clips"][0]["source"].update(file="https://x/a.png"),
        lambda d: d["clips"][1].update(start=-1),
        lambda d: d["audio"][0].update(role="drums"),
        lambda d: d["text"][0].update(file="lyrics.txt"),
        lambda d: d.update(clips=[]),
        lambda d: d["clips"][0].update(focus={"x": 2, "y": 0.5}),
        lambda d: d["clips"][0].update(focus={"x": 0.5}),
        lambda d: d.update(watermark={"file": "logo.gif"}),
        lambda d: d.update(watermark={"file": "https://x/logo.png"}),
        lambda d: d.update(watermark={"file": "a.png", "position": "middle"}),
        lambda d: d.update(watermark={"file": "a.png", "width": 0.01}),
        lambda d: d.update(watermark={"file": "a.png", "margin": 0.3}),
        lambda d: d.update(watermark={"file": "a.png", "alpha": 1}),
        lambda d: d.update(manifest=[1, 2]),
        lambda d: d["output"].update(loudness=-50),
        lambda d: d["output"].update(true_peak=1),
    ],
)
def test_json_schema_rejects_invalid_examples(mutate: Any) -> None:
    d = doc()
    mutate(d)
    validator = jsonschema.Draft202012Validator(timeline_json_schema())
    assert not validator.is_valid(d)
    with pytest.raises(TimelineError):
        load_timeline(d)


def test_clip_end_and_overlap() -> None:
    t = load_timeline(VALID)
    c: Clip = t.clips[0]
    assert (c.end, c.overlap) == (4.0, 0.5)


def test_published_schema_file_is_in_sync() -> None:
    """workers/assembly/timeline.schema.json is timeline_json_schema(), dumped.

    Regenerate with: python -c "import json; from workers.assembly.timeline import
    timeline_json_schema as s; print(json.dumps(s(), indent=2))"
    > workers/assembly/timeline.schema.json
    """
    path = Path(__file__).parents[3] / "workers/assembly/timeline.schema.json"
    assert json.loads(path.read_text()) == timeline_json_schema()


def test_wrong_top_level_shapes() -> None:
    assert paths_of(doc(clips=5)) == ["clips"]
    d = doc()
    d["text"][2] = {"kind": "karaoke"}
    assert paths_of(d) == ["text[2].words"]
    d = doc()
    del d["output"]
    assert paths_of(d) == ["output"]


# -- focus, watermark, manifest, loudness --

EXTRAS: dict[str, Any] = copy.deepcopy(VALID)
EXTRAS["output"].update(loudness=-16, true_peak=-1.5)
EXTRAS["clips"][0]["focus"] = {"x": 0.4, "y": 0.25}
EXTRAS["clips"][2]["focus"] = {"x": 1, "y": 0}
EXTRAS["watermark"] = {
    "file": "brand/logo.webp",
    "position": "top_left",
    "opacity": 0.5,
    "width": 0.2,
    "margin": 0.05,
}
EXTRAS["manifest"] = {
    "job": "42",
    "prompt": "bananas in space \u00e9\u00e8 \U0001f34c",
    "seed": 7,
    "weights": [0.5, 1, None, True],
    "nested": {"a b": {"c": []}},
}


def extras(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(EXTRAS)
    d.update(changes)
    return d


def test_moves_come_from_motion() -> None:
    assert {"push_in", "push_out", "static"} <= set(MOVES)
    for move in ("push_in", "push_out", "static"):
        d = doc()
        d["clips"][0]["move"] = move
        assert load_timeline(d).clips[0].move == move


def test_new_blocks_load() -> None:
    t = load_timeline(EXTRAS)
    assert t.output.loudness == -16.0 and t.output.true_peak == -1.5
    assert t.clips[0].focus == (0.4, 0.25)
    assert t.clips[1].focus is None
    assert t.clips[2].focus == (1.0, 0.0)
    assert t.watermark == Watermark("brand/logo.webp", "top_left", 0.5, 0.2, 0.05)
    assert t.manifest == EXTRAS["manifest"]
    assert t.manifest is not EXTRAS["manifest"]


def test_new_blocks_round_trip() -> None:
    t = load_timeline(EXTRAS)
    d = t.to_dict()
    assert d["clips"][0]["focus"] == {"x": 0.4, "y": 0.25}
    assert "focus" not in d["clips"][1]
    assert d["watermark"] == EXTRAS["watermark"]
    assert d["manifest"] == EXTRAS["manifest"]
    assert (d["output"]["loudness"], d["output"]["true_peak"]) == (-16.0, -1.5)
    assert load_timeline(d) == t
    assert load_timeline(json.dumps(d)) == t
    assert load_timeline(t.to_json()) == t
    assert load_timeline(d).to_dict() == d
    assert t != load_timeline(VALID)


def test_new_blocks_default_when_absent() -> None:
    t = load_timeline(VALID)
    assert t.watermark is None and t.manifest is None
    assert all(c.focus is None for c in t.clips)
    assert (t.output.loudness, t.output.true_peak) == (-14.0, -1.0)
    d = t.to_dict()
    assert "watermark" not in d and "manifest" not in d
    assert "loudness" not in d["output"] and "true_peak" not in d["output"]
    assert all("focus" not in c for c in d["clips"])


def test_output_loudness_only_written_when_not_default() -> None:
    d = doc()
    d["output"].update(loudness=-14, true_peak=-2)
    t = load_timeline(d)
    want = Output(1920, 1080, 30, "mp4", "high", None, "youtube", -14.0, -2.0)
    assert t.output == want
    out = t.to_dict()["output"]
    assert "loudness" not in out and out["true_peak"] == -2.0
    assert load_timeline(t.to_dict()) == t
    d["output"].update(loudness=-40, true_peak=0)  # both bounds are allowed
    assert (load_timeline(d).output.loudness, load_timeline(d).output.true_peak) == (
        -40.0,
        0.0,
    )
    d["output"].update(loudness=-5, true_peak=-9)
    assert load_timeline(d).output.loudness == -5.0


def test_watermark_defaults() -> None:
    t = load_timeline(doc(watermark={"file": "logo.png"}))
    assert t.watermark == Watermark("logo.png", "bottom_right", 0.8, 0.12, 0.03)
    assert t.to_dict()["watermark"] == {
        "file": "logo.png",
        "position": "bottom_right",
        "opacity": 0.8,
        "width": 0.12,
        "margin": 0.03,
    }
    assert load_timeline(t.to_dict()) == t
    for name in ("a.JPG", "b.jpeg", "/abs/c.png", "d.WebP"):
        w = load_timeline(doc(watermark={"file": name, "width": 1, "margin": 0.25}))
        assert w.watermark is not None and w.watermark.file == name
    for pos in ("top_left", "top_right", "bottom_left", "bottom_right", "center"):
        w = load_timeline(doc(watermark={"file": "a.png", "position": pos}))
        assert w.watermark is not None and w.watermark.position == pos


@pytest.mark.parametrize(
    ("output", "path", "needle"),
    [
        ({"loudness": -41}, "output.loudness", "must be >= -40 and <= -5"),
        ({"loudness": -4.5}, "output.loudness", "must be <= -5"),
        ({"loudness": "loud"}, "output.loudness", "must be a number"),
        ({"loudness": True}, "output.loudness", "must be a number"),
        ({"true_peak": 0.1}, "output.true_peak", "must be <= 0"),
        ({"true_peak": -9.5}, "output.true_peak", "must be >= -9"),
        ({"true_peak": None}, "output.true_peak", "must be a number"),
        ({"lufs": -14}, "output.lufs", "unknown key 'lufs'"),
    ],
)
def test_bad_loudness(output: dict[str, Any], path: str, needle: str) -> None:
    d = doc()
    d["output"].update(output)
    errs = errors_of(d)
    assert [p for p, _ in errs] == [path]
    assert needle in errs[0][1]


def test_loudness_errors_with_explicit_output() -> None:
    d = doc(output={"width": 640, "height": 360, "fps": 24, "loudness": 0})
    d["output"]["true_peak"] = float("nan")
    assert paths_of(d) == ["output.loudness", "output.true_peak"]


def test_focus_on_a_video_clip() -> None:
    d = doc()
    d["clips"][1]["focus"] = {"x": 0.5, "y": 0.5}
    assert errors_of(d) == [("clips[1].focus", "only still clips take a focus")]


@pytest.mark.parametrize(
    ("focus", "paths"),
    [
        ({"x": 1.5, "y": 0.5}, ["clips[0].focus.x"]),
        ({"x": 0.5, "y": -0.1}, ["clips[0].focus.y"]),
        ({"x": "left", "y": 0.5}, ["clips[0].focus.x"]),
        ({"x": True, "y": 0.5}, ["clips[0].focus.x"]),
        ({"x": 0.5}, ["clips[0].focus.y"]),
        ({"x": 0.5, "y": 0.5, "zoom": 2}, ["clips[0].focus.zoom"]),
        ([0.5, 0.5], ["clips[0].focus"]),
        (None, ["clips[0].focus"]),
        ({"x": 2, "y": 2}, ["clips[0].focus.x", "clips[0].focus.y"]),
    ],
)
def test_bad_focus(focus: Any, paths: list[str]) -> None:
    d = doc()
    d["clips"][0]["focus"] = focus
    assert paths_of(d) == paths


def test_bad_focus_messages() -> None:
    d = doc()
    d["clips"][2]["focus"] = {"x": 1.5, "y": 0.5}
    assert errors_of(d) == [("clips[2].focus.x", "must be <= 1 (got 1.5)")]
    d["clips"][2]["focus"] = {"y": 0.5}
    assert errors_of(d) == [("clips[2].focus.x", "is required")]


@pytest.mark.parametrize(
    ("watermark", "path", "needle"),
    [
        ({"file": "a.png", "opacity": 1.2}, "watermark.opacity", "must be <= 1"),
        ({"file": "a.png", "opacity": -0.1}, "watermark.opacity", ">= 0"),
        ({"file": "a.png", "opacity": "half"}, "watermark.opacity", "a number"),
        ({"file": "a.png", "width": 0.01}, "watermark.width", "must be > 0.01"),
        ({"file": "a.png", "width": 0}, "watermark.width", "must be > 0.01"),
        ({"file": "a.png", "width": 1.01}, "watermark.width", "must be <= 1"),
        ({"file": "a.png", "margin": 0.26}, "watermark.margin", "must be <= 0.25"),
        ({"file": "a.png", "margin": -0.01}, "watermark.margin", ">= 0"),
        ({"file": "a.png", "position": "middle"}, "watermark.position", "top_left"),
        ({"file": "a.png", "position": "bottom"}, "watermark.position", "center"),
        ({"file": "a.png", "position": 3}, "watermark.position", "a string"),
        ({"file": "a.png", "alpha": 0.5}, "watermark.alpha", "unknown key 'alpha'"),
        ({"file": "https://cdn.x/logo.png"}, "watermark.file", "not a URL"),
        ({"file": "file:///tmp/logo.png"}, "watermark.file", "not a URL"),
        ({"file": "data:image/png;base64,AAAA"}, "watermark.file", "not a URL"),
        ({"file": "logo.gif"}, "watermark.file", "must end with .png or .jpg"),
        ({"file": "logo.png.txt"}, "watermark.file", ".webp"),
        ({"file": "logo\n.png"}, "watermark.file", "line breaks"),
        ({"file": 5}, "watermark.file", "must be a string"),
        ({"file": "  "}, "watermark.file", "must not be empty"),
        ({"opacity": 0.5}, "watermark.file", "is required"),
    ],
)
def test_bad_watermark(watermark: dict[str, Any], path: str, needle: str) -> None:
    errs = errors_of(doc(watermark=watermark))
    assert [p for p, _ in errs] == [path]
    assert needle in errs[0][1]


def test_watermark_wrong_type_and_several_errors() -> None:
    assert paths_of(doc(watermark="logo.png")) == ["watermark"]
    assert paths_of(doc(watermark=None)) == ["watermark"]
    bad = {"file": "x.bmp", "position": "nowhere", "opacity": 2, "margin": 1}
    assert paths_of(doc(watermark=bad)) == [
        "watermark.file",
        "watermark.position",
        "watermark.opacity",
        "watermark.margin",
    ]


@pytest.mark.parametrize("manifest", [[1, 2], "meta", 3, None, True])
def test_manifest_must_be_an_object(manifest: Any) -> None:
    errs = errors_of(doc(manifest=manifest))
    assert [p for p, _ in errs] == ["manifest"]
    assert "must be an object" in errs[0][1]


def test_manifest_any_json_object() -> None:
    assert load_timeline(doc(manifest={})).manifest == {}
    assert load_timeline(doc(manifest={})).to_dict()["manifest"] == {}
    m = {"a": {"b": [1, 2.5, "x", None, False, {"c": {}}]}}
    t = load_timeline(json.dumps(doc(manifest=m)))
    assert t.manifest == m
    assert load_timeline(t.to_dict()) == t


def test_manifest_is_copied() -> None:
    d = doc(manifest={"tags": ["a"]})
    t = load_timeline(d)
    d["manifest"]["tags"].append("b")
    assert t.manifest == {"tags": ["a"]}
    out = t.to_dict()
    out["manifest"]["tags"].append("c")
    assert t.manifest == {"tags": ["a"]}


def _manifest_of_size(n: int) -> dict[str, Any]:
    """A manifest whose compact UTF-8 JSON is n bytes, mostly 2-byte chars."""
    overhead = len('{"a":""}')
    body = n - overhead
    return {"a": "\u00e9" * (body // 2) + "x" * (body % 2)}


def test_manifest_size_limit_counts_utf8_bytes() -> None:
    assert MAX_MANIFEST_BYTES == 65536
    m = _manifest_of_size(MAX_MANIFEST_BYTES)
    encoded = json.dumps(m, separators=(",", ":"), ensure_ascii=False)
    assert len(encoded.encode("utf-8")) == MAX_MANIFEST_BYTES
    assert len(encoded) < MAX_MANIFEST_BYTES  # characters alone would not catch it
    assert load_timeline(doc(manifest=m)).manifest == m
    too_big = _manifest_of_size(MAX_MANIFEST_BYTES + 1)
    errs = errors_of(doc(manifest=too_big))
    assert [p for p, _ in errs] == ["manifest"]
    assert "65536 bytes" in errs[0][1] and "65537" in errs[0][1]


def test_manifest_size_ignores_indentation() -> None:
    # Compact encoding is what counts, not how the document was written.
    m = {"k": "y" * (MAX_MANIFEST_BYTES - len('{"k":""}'))}
    text = json.dumps(doc(manifest=m), indent=8)
    assert load_timeline(text).manifest == m


@pytest.mark.parametrize(
    ("manifest", "path", "needle"),
    [
        ({"score": float("nan")}, "manifest.score", "finite"),
        ({"list": [1, float("inf")]}, "manifest.list[1]", "finite"),
        ({"tags": {"a", "b"}}, "manifest.tags", "JSON value"),
        ({"when": (1, 2)}, "manifest.when", "JSON value"),
        ({"odd key": {"x": object()}}, 'manifest["odd key"].x', "JSON value"),
        ({1: "one"}, "manifest", "keys must be strings"),
        ({"s": "\ud800"}, "manifest.s", "Unicode"),
    ],
)
def test_manifest_bad_values(manifest: dict[Any, Any], path: str, needle: str) -> None:
    errs = errors_of(doc(manifest=manifest))
    assert [p for p, _ in errs] == [path]
    assert needle in errs[0][1]


def test_manifest_depth_limit() -> None:
    ok: Any = "leaf"
    for _ in range(MAX_MANIFEST_DEPTH - 1):
        ok = {"n": ok}
    assert load_timeline(doc(manifest=ok)).manifest == ok
    deep: Any = {"n": ok}
    errs = errors_of(doc(manifest=deep))
    assert len(errs) == 1 and errs[0][0].startswith("manifest.n.n")
    assert "nests too deeply" in errs[0][1]
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert "nests too deeply" in errors_of(doc(manifest=cyclic))[0][1]


def test_new_block_errors_reported_together() -> None:
    d = doc(watermark={"file": "http://x/logo.png", "opacity": 3}, manifest=[])
    d["output"]["loudness"] = 1
    d["clips"][1]["focus"] = {"x": 0.5, "y": 0.5}
    d["clips"][2]["focus"] = {"x": 0.5, "y": 9}
    assert paths_of(d) == [
        "output.loudness",
        "clips[1].focus",
        "clips[2].focus.y",
        "watermark.file",
        "watermark.opacity",
        "manifest",
    ]


def test_json_schema_accepts_new_blocks() -> None:
    validator = jsonschema.Draft202012Validator(timeline_json_schema())
    validator.validate(EXTRAS)
    validator.validate(load_timeline(EXTRAS).to_dict())
    validator.validate(extras(watermark={"file": "a.JPEG", "width": 1}))


def test_a_clips_two_transitions_must_fit_inside_it() -> None:
    def still(start: float, duration: float, fade: float | None = None) -> dict:
        clip: dict = {
            "source": {"kind": "still", "file": "a.png"},
            "start": start,
            "duration": duration,
        }
        if fade:
            clip["transition"] = {"type": "crossfade", "duration": fade}
        return clip

    d = doc(clips=[still(0, 2, 0.8), still(1.2, 1.0, 0.8), still(1.4, 2)])
    d.pop("text")
    d["output"].pop("duration", None)
    errors = dict(errors_of(d))
    assert "clips[1].transition.duration" in errors
    assert "must be <= 0.2" in errors["clips[1].transition.duration"]
