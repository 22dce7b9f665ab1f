"""The timeline: the versioned JSON document the renderer takes.

``load_timeline`` validates a document (a dict, a JSON string or a path to a
JSON file) and returns frozen dataclasses. Every problem is collected and
reported together in one ``TimelineError``, each named by its field path
(``clips[3].transition.duration``), so a typo or a bad number is caught before
any rendering starts. ``timeline_json_schema()`` is the same contract as a JSON
Schema (draft 2020-12) for editors and other tools; the cross-field rules
(contiguity, ordering, transition lengths) are only checked here.

Version 1 (all times are seconds, finite and >= 0; unknown keys are errors)::

    {
      "version": 1,                                   # required
      "output": {                                     # required
        "preset": "youtube",         # one of PRESETS, or else all three of:
        "width": 1920, "height": 1080, "fps": 30,     # even sizes, fps 1..120
        "format": "mp4",             # mp4 | webm | gif (default mp4)
        "quality": "standard",       # draft|standard|high or a CRF 0..51
        "duration": 12.0,            # optional; default: end of the last clip
        "loudness": -14.0,           # integrated LUFS, -40..-5 (default -14)
        "true_peak": -1.0            # dBTP ceiling, -9..0 (default -1)
      },
      "audio": [                                      # optional
        {"file": "song.wav", "role": "music",         # music | voice
         "gain_db": 0, "fade_in": 0, "fade_out": 0,
         "start": 0, "offset": 0}                     # timeline s / into file
      ],
      "clips": [                                      # required, non-empty
        {"source": {"kind": "still", "file": "a.png"},
         "start": 0, "duration": 4,
         "move": "zoom_in",          # stills only: one of MOVES or
                                     # {"from": {x, y, zoom}, "to": {...}}
         "focus": {"x": 0.4, "y": 0.3},  # stills only: fractions of the image
         "strength": 1.0,            # stills only: how far the move goes, 0..2
         "grade": {"preset": "noir", "intensity": 1},  # this clip's own grade
         "transition": {"type": "crossfade", "duration": 0.5}},
        {"source": {"kind": "video", "file": "b.mp4"},
         "start": 3.5, "duration": 4,
         "in": 1.0, "out": 5.0,      # video only; out optional
         "speed": 1.0}               # video only, 0.25..4
      ],
      "grade": {"preset": "cinematic_teal_orange", "intensity": 0.8},  # or "cube"
      "text": [
        {"kind": "subtitles", "file": "lyrics.srt"},          # .srt | .ass
        {"kind": "title", "text": "Hi", "start": 0, "end": 2,
         "position": "center", "style": "default"},
        {"kind": "karaoke", "words": [{"word": "la", "start": 1, "end": 1.4}],
         "position": "bottom", "style": "default"}
      ],
      "watermark": {"file": "logo.png",               # .png|.jpg|.jpeg|.webp
                    "position": "bottom_right",       # top_left|top_right|
                                                      # bottom_left|bottom_right|
                                                      # center
                    "opacity": 0.8,                   # 0..1
                    "width": 0.12,                    # of output width, >0.01..1
                    "margin": 0.03},                  # of output width, 0..0.25
      "manifest": {"job": "42", "prompt": "..."},     # any JSON object
      "cuts": [4.0, 8.0],                             # optional, ascending
      "beats": [0.5, 1.0]                             # optional, ascending
    }

Rules beyond types:

* Clips are in order and contiguous: the first starts at 0 and each later one
  starts where the previous one ends minus the previous clip's transition
  (its overlap). A gap or an overlap is reported on ``clips[i].start``.
* ``transition`` joins a clip to the NEXT one, so the last clip has none. A
  ``cut`` has duration 0; any other type lasts at least one frame, at most
  ``MAX_DURATION`` and less than both clips it joins.
* ``focus`` is the point of a still (x, y as fractions of the image) that the
  framing keeps in view and that named zooms and pushes close in on; without
  it the centre is used. Video clips take no ``focus`` (nor ``move``).
* A video clip's ``out`` (if given) must agree with ``in + duration * speed``
  to within half a frame.
* ``output.duration`` may be shorter than the clips (the render is cut there)
  but not longer. Titles and karaoke words must end by then.
* Ducking: every ``voice`` track ducks every ``music`` track while it plays;
  there is no flag for it.
* Karaoke words are ascending and do not overlap; ``cuts``/``beats`` are
  strictly ascending.
* File paths are local (relative or absolute) strings without NUL or line
  breaks; URLs (``http://``, ``file://``, ``data:``...) are rejected.
* ``watermark`` overlays an image on every frame; its ``width`` and
  ``margin`` are fractions of the output width (its height follows the image's
  aspect ratio). Defaults: bottom_right, opacity 0.8, width 0.12, margin 0.03.
* ``manifest`` is any JSON object (string keys, JSON values, finite numbers)
  embedded in the rendered file's metadata. Its compact UTF-8 JSON encoding
  (no spaces, non-ASCII kept as is) must be at most ``MAX_MANIFEST_BYTES``
  (65536) bytes, and it may nest at most ``MAX_MANIFEST_DEPTH`` levels.
* ``output.loudness`` and ``output.true_peak`` are the targets the soundtrack
  is normalised to; ``to_dict`` writes them only when they differ from the
  defaults.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from workers.assembly.grading import GRADES
from workers.assembly.motion import MAX_STRENGTH, MOVES
from workers.assembly.presets import PRESETS, get_preset
from workers.assembly.transitions import MAX_DURATION, TRANSITIONS

VERSION = 1
FORMATS = ("mp4", "webm", "gif")
QUALITIES = ("draft", "standard", "high")
MAX_CRF = 51
MIN_FPS, MAX_FPS = 1, 120
MIN_SPEED, MAX_SPEED = 0.25, 4.0
MIN_GAIN_DB, MAX_GAIN_DB = -96.0, 24.0
ROLES = ("music", "voice")
POSITIONS = ("top", "center", "bottom", "lower_third")
SUBTITLE_SUFFIXES = (".srt", ".ass")
MIN_LOUDNESS, MAX_LOUDNESS, DEFAULT_LOUDNESS = -40.0, -5.0, -14.0  # LUFS
MIN_TRUE_PEAK, MAX_TRUE_PEAK, DEFAULT_TRUE_PEAK = -9.0, 0.0, -1.0  # dBTP
WATERMARK_POSITIONS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")
WATERMARK_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MIN_WATERMARK_WIDTH = 0.01  # exclusive; fractions of the output width
MAX_WATERMARK_MARGIN = 0.25
MAX_MANIFEST_BYTES = 65536  # compact JSON, UTF-8
MAX_MANIFEST_DEPTH = 32
EPSILON = 1e-6  # seconds; slack for float sums when checking contiguity

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|(?:data|file|blob|javascript):", re.I)


class TimelineError(ValueError):
    """Every problem found in a timeline; ``errors`` is [(field path, message)]."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors)
        lines = [f"{path or '(document)'}: {msg}" for path, msg in self.errors]
        n = len(lines)
        head = "1 problem" if n == 1 else f"{n} problems"
        super().__init__(f"{head} in the timeline:\n  " + "\n  ".join(lines))


# --------------------------------------------------------------------------
# The document as dataclasses


@dataclass(frozen=True)
class Output:
    width: int
    height: int
    fps: int
    format: Literal["mp4", "webm", "gif"] = "mp4"
    quality: int | str = "standard"
    duration: float | None = None  # None: the end of the last clip
    preset: str | None = None  # set when width/height/fps came from a preset
    loudness: float = DEFAULT_LOUDNESS  # integrated loudness target, LUFS
    true_peak: float = DEFAULT_TRUE_PEAK  # true-peak ceiling, dBTP

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = (
            {"preset": self.preset}
            if self.preset
            else {"width": self.width, "height": self.height, "fps": self.fps}
        )
        d["format"] = self.format
        d["quality"] = self.quality
        if self.duration is not None:
            d["duration"] = self.duration
        if self.loudness != DEFAULT_LOUDNESS:
            d["loudness"] = self.loudness
        if self.true_peak != DEFAULT_TRUE_PEAK:
            d["true_peak"] = self.true_peak
        return d


@dataclass(frozen=True)
class AudioTrack:
    file: str
    role: Literal["music", "voice"] = "music"
    gain_db: float = 0.0
    fade_in: float = 0.0
    fade_out: float = 0.0
    start: float = 0.0  # where it starts on the timeline
    offset: float = 0.0  # how far into the file it starts

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "role": self.role,
            "gain_db": self.gain_db,
            "fade_in": self.fade_in,
            "fade_out": self.fade_out,
            "start": self.start,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class Framing:
    """A view of a still: centre (x, y) as fractions of the image, zoom >= 1."""

    x: float = 0.5
    y: float = 0.5
    zoom: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "y": self.y, "zoom": self.zoom}


@dataclass(frozen=True)
class CustomMove:
    start: Framing  # "from" in JSON
    end: Framing  # "to" in JSON

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start.to_dict(), "to": self.end.to_dict()}


Move: TypeAlias = str | CustomMove


@dataclass(frozen=True)
class Source:
    kind: Literal["still", "video"]
    file: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file}


@dataclass(frozen=True)
class TransitionSpec:
    type: str
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "duration": self.duration}


@dataclass(frozen=True)
class Clip:
    source: Source
    start: float
    duration: float
    in_: float = 0.0  # "in" in JSON; video only
    out: float | None = None  # video only
    speed: float = 1.0  # video only
    move: Move | None = None  # stills only
    transition: TransitionSpec | None = None  # into the next clip
    focus: tuple[float, float] | None = None  # stills only: (x, y) of the image
    strength: float = 1.0  # stills only: how far a named move travels
    grade: Grade | None = None  # this clip's own grade, over the timeline's

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def overlap(self) -> float:
        """Seconds this clip shares with the next one."""
        return self.transition.duration if self.transition else 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "source": self.source.to_dict(),
            "start": self.start,
            "duration": self.duration,
        }
        if self.source.kind == "video":
            d["in"] = self.in_
            if self.out is not None:
                d["out"] = self.out
            d["speed"] = self.speed
        if self.move is not None:
            d["move"] = self.move if isinstance(self.move, str) else self.move.to_dict()
        if self.focus is not None:
            d["focus"] = {"x": self.focus[0], "y": self.focus[1]}
        if self.strength != 1.0:
            d["strength"] = self.strength
        if self.grade is not None:
            d["grade"] = self.grade.to_dict()
        if self.transition is not None:
            d["transition"] = self.transition.to_dict()
        return d


@dataclass(frozen=True)
class Grade:
    preset: str | None = None
    cube: str | None = None
    intensity: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = (
            {"preset": self.preset} if self.preset is not None else {"cube": self.cube}
        )
        d["intensity"] = self.intensity
        return d


@dataclass(frozen=True)
class Subtitles:
    file: str
    kind: Literal["subtitles"] = "subtitles"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file}


@dataclass(frozen=True)
class Title:
    text: str
    start: float
    end: float
    position: str = "center"
    style: str = "default"
    kind: Literal["title"] = "title"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "position": self.position,
            "style": self.style,
        }


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return {"word": self.word, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Karaoke:
    words: tuple[Word, ...]
    position: str = "bottom"
    style: str = "default"
    kind: Literal["karaoke"] = "karaoke"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "words": [w.to_dict() for w in self.words],
            "position": self.position,
            "style": self.style,
        }


TextItem: TypeAlias = Subtitles | Title | Karaoke

WatermarkPosition: TypeAlias = Literal[
    "top_left", "top_right", "bottom_left", "bottom_right", "center"
]


@dataclass(frozen=True)
class Watermark:
    """An image over every frame; width and margin are fractions of the
    output width."""

    file: str
    position: WatermarkPosition = "bottom_right"
    opacity: float = 0.8
    width: float = 0.12
    margin: float = 0.03

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "position": self.position,
            "opacity": self.opacity,
            "width": self.width,
            "margin": self.margin,
        }


@dataclass(frozen=True)
class Timeline:
    output: Output
    clips: tuple[Clip, ...]
    audio: tuple[AudioTrack, ...] = ()
    grade: Grade | None = None
    text: tuple[TextItem, ...] = ()
    cuts: tuple[float, ...] = ()
    beats: tuple[float, ...] = ()
    version: int = VERSION
    watermark: Watermark | None = None
    # Any JSON object for the rendered file's metadata. A plain dict: equality
    # works, hashing a Timeline that has one does not.
    manifest: Mapping[str, Any] | None = None

    @property
    def fps(self) -> int:
        return self.output.fps

    @property
    def clips_end(self) -> float:
        return self.clips[-1].end if self.clips else 0.0

    @property
    def duration(self) -> float:
        """``output.duration`` if given, else the end of the last clip."""
        if self.output.duration is not None:
            return self.output.duration
        return self.clips_end

    def frame_of(self, t: float) -> int:
        """The frame shown at ``t`` seconds: round(t * fps)."""
        return int(round(t * self.output.fps))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version,
            "output": self.output.to_dict(),
            "clips": [c.to_dict() for c in self.clips],
        }
        if self.audio:
            d["audio"] = [a.to_dict() for a in self.audio]
        if self.grade is not None:
            d["grade"] = self.grade.to_dict()
        if self.text:
            d["text"] = [t.to_dict() for t in self.text]
        if self.watermark is not None:
            d["watermark"] = self.watermark.to_dict()
        if self.manifest is not None:
            d["manifest"] = copy.deepcopy(dict(self.manifest))
        if self.cuts:
            d["cuts"] = list(self.cuts)
        if self.beats:
            d["beats"] = list(self.beats)
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


# --------------------------------------------------------------------------
# Validation


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else json.dumps(v, default=repr)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


class _Checker:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def err(self, path: str, msg: str) -> None:
        self.errors.append((path, msg))

    # -- shapes --

    def obj(
        self,
        path: str,
        value: Any,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.err(path, f"must be an object (got {_type_name(value)})")
            return None
        allowed = required + optional
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.err(where, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                where = f"{path}.{key}" if path else key
                self.err(where, "is required")
        return value

    def array(self, path: str, value: Any, non_empty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            self.err(path, f"must be an array (got {_type_name(value)})")
            return []
        if non_empty and not value:
            self.err(path, "must not be empty")
        return value

    # -- scalars; each returns None when the value is invalid --

    def number(
        self,
        path: str,
        value: Any,
        lo: float | None = None,
        hi: float | None = None,
        lo_open: bool = False,
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.err(path, f"must be a number (got {_type_name(value)} {_fmt(value)})")
            return None
        v = float(value)
        if not math.isfinite(v):
            self.err(path, f"must be finite (got {value})")
            return None
        if lo is not None and (v <= lo if lo_open else v < lo):
            rel = ">" if lo_open else ">="
            bound = f" and <= {hi:g}" if hi is not None else ""
            self.err(path, f"must be {rel} {lo:g}{bound} (got {value})")
            return None
        if hi is not None and v > hi:
            self.err(path, f"must be <= {hi:g} (got {value})")
            return None
        return v

    def time(self, path: str, value: Any, positive: bool = False) -> float | None:
        return self.number(path, value, 0.0, lo_open=positive)

    def integer(self, path: str, value: Any, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(
                path, f"must be an integer (got {_type_name(value)} {_fmt(value)})"
            )
            return None
        if not lo <= value <= hi:
            self.err(path, f"must be between {lo} and {hi} (got {value})")
            return None
        return value

    def string(self, path: str, value: Any, non_empty: bool = True) -> str | None:
        if not isinstance(value, str):
            self.err(path, f"must be a string (got {_type_name(value)} {_fmt(value)})")
            return None
        if non_empty and not value.strip():
            self.err(path, "must not be empty")
            return None
        return value

    def choice(self, path: str, value: Any, choices: Any) -> str | None:
        s = self.string(path, value)
        if s is None:
            return None
        if s not in choices:
            self.err(path, f"must be one of: {', '.join(choices)} (got {s!r})")
            return None
        return s

    def identifier(self, path: str, value: Any) -> str | None:
        s = self.string(path, value)
        if s is not None and not _IDENTIFIER.fullmatch(s):
            self.err(
                path,
                "must be a simple identifier (letters, digits, _ or -, "
                f"starting with a letter or _) (got {s!r})",
            )
            return None
        return s

    def file(self, path: str, value: Any, suffixes: tuple[str, ...] = ()) -> str | None:
        s = self.string(path, value)
        if s is None:
            return None
        if "\x00" in s or "\n" in s or "\r" in s:
            self.err(path, "must not contain NUL or line breaks")
            return None
        if _URL.match(s.strip()):
            self.err(
                path,
                f"must be a local file path, not a URL (got {s!r}); "
                "the renderer only reads local files",
            )
            return None
        if suffixes and not s.lower().endswith(suffixes):
            self.err(path, f"must end with {' or '.join(suffixes)} (got {s!r})")
            return None
        return s

    def ascending(self, path: str, value: Any) -> tuple[float, ...]:
        out: list[float] = []
        prev: float | None = None
        for i, item in enumerate(self.array(path, value)):
            t = self.time(f"{path}[{i}]", item)
            if t is None:
                continue
            if prev is not None and t <= prev:
                self.err(
                    f"{path}[{i}]",
                    f"must be greater than the previous value {prev:g} (got {t:g})",
                )
            prev = t
            out.append(t)
        return tuple(out)


def _opt(
    check: Callable[..., Any], path: str, d: Mapping[str, Any], key: str, default: Any
) -> Any:
    """``check(path.key, d[key])`` if present, else ``default``."""
    if key not in d:
        return default
    v = check(f"{path}.{key}", d[key])
    return default if v is None else v


def _output(c: _Checker, value: Any) -> tuple[Output | None, bool]:
    """The output block, and whether its frame rate is trustworthy."""
    p = "output"
    d = c.obj(
        p,
        value,
        (),
        (
            "preset",
            "width",
            "height",
            "fps",
            "format",
            "quality",
            "duration",
            "loudness",
            "true_peak",
        ),
    )
    if d is None:
        return None, False
    ok = True
    preset_name: str | None = None
    width = height = fps = None
    if "preset" in d:
        explicit = [k for k in ("width", "height", "fps") if k in d]
        if explicit:
            c.err(
                f"{p}.{explicit[0]}",
                "give either preset or width/height/fps, not both",
            )
            ok = False
        name = c.string(f"{p}.preset", d["preset"])
        if name is not None:
            try:
                preset = get_preset(name)
            except ValueError:
                c.err(
                    f"{p}.preset",
                    f"must be one of: {', '.join(PRESETS)} (got {name!r})",
                )
                ok = False
            else:
                preset_name = preset.name
                width, height, fps = preset.width, preset.height, preset.fps
        else:
            ok = False
    else:
        missing = [k for k in ("width", "height", "fps") if k not in d]
        for k in missing:
            c.err(f"{p}.{k}", "is required when no preset is given")
        ok = not missing
        for key in ("width", "height"):
            if key in d:
                v = c.integer(f"{p}.{key}", d[key], 2, 8192)
                if v is not None and v % 2:
                    c.err(f"{p}.{key}", f"must be even (got {v})")
                    v = None
                if v is None:
                    ok = False
                elif key == "width":
                    width = v
                else:
                    height = v
        if "fps" in d:
            fps = c.integer(f"{p}.fps", d["fps"], MIN_FPS, MAX_FPS)
            ok = ok and fps is not None
    fmt = _opt(lambda q, v: c.choice(q, v, FORMATS), p, d, "format", "mp4")
    quality: int | str = "standard"
    if "quality" in d:
        q = d["quality"]
        if isinstance(q, str):
            quality = c.choice(f"{p}.quality", q, QUALITIES) or "standard"
        elif isinstance(q, int) and not isinstance(q, bool):
            quality = c.integer(f"{p}.quality", q, 0, MAX_CRF) or 0
        else:
            c.err(
                f"{p}.quality",
                f"must be one of {', '.join(QUALITIES)} or a CRF integer 0..{MAX_CRF} "
                f"(got {_type_name(q)} {_fmt(q)})",
            )
    duration = _opt(lambda q, v: c.time(q, v, positive=True), p, d, "duration", None)
    loudness = _opt(
        lambda q, v: c.number(q, v, MIN_LOUDNESS, MAX_LOUDNESS),
        p,
        d,
        "loudness",
        DEFAULT_LOUDNESS,
    )
    true_peak = _opt(
        lambda q, v: c.number(q, v, MIN_TRUE_PEAK, MAX_TRUE_PEAK),
        p,
        d,
        "true_peak",
        DEFAULT_TRUE_PEAK,
    )
    if width is None or height is None or fps is None:
        return None, False
    output = Output(
        width, height, fps, fmt, quality, duration, preset_name, loudness, true_peak
    )
    return output, ok


def _audio(c: _Checker, value: Any) -> tuple[AudioTrack, ...]:
    tracks = []
    keys = ("role", "gain_db", "fade_in", "fade_out", "start", "offset")
    for i, item in enumerate(c.array("audio", value)):
        p = f"audio[{i}]"
        d = c.obj(p, item, ("file",), keys)
        if d is None:
            continue
        file = c.file(f"{p}.file", d["file"]) if "file" in d else None
        role = _opt(lambda q, v: c.choice(q, v, ROLES), p, d, "role", "music")
        gain = _opt(
            lambda q, v: c.number(q, v, MIN_GAIN_DB, MAX_GAIN_DB), p, d, "gain_db", 0.0
        )
        times = {k: _opt(c.time, p, d, k, 0.0) for k in keys[2:]}
        if file is not None:
            tracks.append(AudioTrack(file, role, gain, **times))
    return tuple(tracks)


def _framing(c: _Checker, path: str, value: Any) -> Framing | None:
    d = c.obj(path, value, ("x", "y"), ("zoom",))
    if d is None:
        return None
    x = c.number(f"{path}.x", d["x"], 0.0, 1.0) if "x" in d else None
    y = c.number(f"{path}.y", d["y"], 0.0, 1.0) if "y" in d else None
    zoom = _opt(lambda q, v: c.number(q, v, 1.0, 16.0), path, d, "zoom", 1.0)
    if x is None or y is None:
        return None
    return Framing(x, y, zoom)


def _focus(c: _Checker, path: str, value: Any) -> tuple[float, float] | None:
    d = c.obj(path, value, ("x", "y"))
    if d is None:
        return None
    x = c.number(f"{path}.x", d["x"], 0.0, 1.0) if "x" in d else None
    y = c.number(f"{path}.y", d["y"], 0.0, 1.0) if "y" in d else None
    if x is None or y is None:
        return None
    return (x, y)


def _move(c: _Checker, path: str, value: Any) -> Move | None:
    if isinstance(value, str):
        return c.choice(path, value, MOVES)
    if not isinstance(value, dict):
        c.err(
            path,
            f"must be one of: {', '.join(MOVES)} or an object with from/to "
            f"(got {_type_name(value)} {_fmt(value)})",
        )
        return None
    d = c.obj(path, value, ("from", "to"))
    if d is None:
        return None
    a = _framing(c, f"{path}.from", d["from"]) if "from" in d else None
    b = _framing(c, f"{path}.to", d["to"]) if "to" in d else None
    if a is None or b is None:
        return None
    return CustomMove(a, b)


def _transition(c: _Checker, path: str, value: Any) -> TransitionSpec | None:
    d = c.obj(path, value, ("type", "duration"))
    if d is None:
        return None
    kind = c.choice(f"{path}.type", d["type"], TRANSITIONS) if "type" in d else None
    dur = c.time(f"{path}.duration", d["duration"]) if "duration" in d else None
    if kind is None or dur is None:
        return None
    return TransitionSpec(kind, dur)


def _clip(c: _Checker, i: int, value: Any) -> Clip | None:
    p = f"clips[{i}]"
    d = c.obj(
        p,
        value,
        ("source", "start", "duration"),
        ("in", "out", "speed", "move", "focus", "transition", "strength", "grade"),
    )
    if d is None:
        return None
    source = None
    if "source" in d:
        s = c.obj(f"{p}.source", d["source"], ("kind", "file"))
        if s is not None:
            kind = (
                c.choice(f"{p}.source.kind", s["kind"], ("still", "video"))
                if ("kind" in s)
                else None
            )
            file = c.file(f"{p}.source.file", s["file"]) if "file" in s else None
            if kind is not None and file is not None:
                source = Source("still" if kind == "still" else "video", file)
    start = c.time(f"{p}.start", d["start"]) if "start" in d else None
    duration = (
        c.time(f"{p}.duration", d["duration"], positive=True)
        if "duration" in d
        else None
    )
    in_: float = 0.0
    out: float | None = None
    speed = 1.0
    move: Move | None = None
    if source is not None and source.kind == "still":
        for key in ("in", "out", "speed"):
            if key in d:
                c.err(f"{p}.{key}", "only video clips take in/out/speed")
    else:
        before = len(c.errors)
        in_ = _opt(c.time, p, d, "in", 0.0)
        speed = _opt(
            lambda q, v: c.number(q, v, MIN_SPEED, MAX_SPEED), p, d, "speed", 1.0
        )
        in_speed_ok = len(c.errors) == before
        out = _opt(lambda q, v: c.time(q, v, positive=True), p, d, "out", None)
        if not in_speed_ok:
            out = None  # nothing sound to compare it with
        elif out is not None and out <= in_:
            c.err(f"{p}.out", f"must be greater than in ({in_:g}) (got {out:g})")
            out = None
    if "move" in d:
        if source is not None and source.kind == "video":
            c.err(f"{p}.move", "only still clips take a move")
        else:
            move = _move(c, f"{p}.move", d["move"])
    focus: tuple[float, float] | None = None
    if "focus" in d:
        if source is not None and source.kind == "video":
            c.err(f"{p}.focus", "only still clips take a focus")
        else:
            focus = _focus(c, f"{p}.focus", d["focus"])
    strength = 1.0
    if "strength" in d:
        if source is not None and source.kind == "video":
            c.err(f"{p}.strength", "only still clips take a move strength")
        else:
            strength = _opt(
                lambda q, v: c.number(q, v, 0.0, MAX_STRENGTH), p, d, "strength", 1.0
            )
    grade = _grade(c, d["grade"], f"{p}.grade") if "grade" in d else None
    transition = (
        _transition(c, f"{p}.transition", d["transition"])
        if ("transition" in d)
        else None
    )
    if source is None or start is None or duration is None:
        return None
    return Clip(
        source, start, duration, in_, out, speed, move, transition, focus,
        strength, grade,
    )  # fmt: skip


def _clips(c: _Checker, value: Any, fps: int | None) -> tuple[Clip, ...]:
    items = c.array("clips", value, non_empty=True)
    parsed = [_clip(c, i, item) for i, item in enumerate(items)]
    # Clips whose overlap with the next is unknown (a bad transition): the next
    # clip's start is not checked against them, so one typo gives one error.
    unsure = {
        i
        for i, (item, clip) in enumerate(zip(items, parsed, strict=True))
        if isinstance(item, dict)
        and "transition" in item
        and (clip is None or clip.transition is None)
    }
    for i, clip in enumerate(parsed):
        if clip is None:
            continue
        p = f"clips[{i}]"
        if fps is not None and clip.source.kind == "video" and clip.out is not None:
            want = clip.in_ + clip.duration * clip.speed
            if abs(clip.out - want) > 0.5 / fps:
                c.err(
                    f"{p}.out",
                    f"must equal in + duration * speed = {want:g} to within half "
                    f"a frame (got {clip.out:g})",
                )
        errors_before = len(c.errors)
        t = clip.transition
        if t is not None:
            tp = f"{p}.transition.duration"
            if i == len(parsed) - 1:
                c.err(f"{p}.transition", "the last clip has no next clip to join")
            elif TRANSITIONS[t.type].kind == "cut":
                if t.duration != 0:
                    c.err(tp, f"a cut has no overlap: must be 0 (got {t.duration:g})")
            else:
                nxt = parsed[i + 1]
                limits = [clip.duration] + ([nxt.duration] if nxt else [])
                if not 0 < t.duration < min(limits):
                    c.err(
                        tp,
                        f"must be > 0 and shorter than both clips (got {t.duration:g})",
                    )
                elif t.duration > MAX_DURATION:
                    c.err(tp, f"must be <= {MAX_DURATION:g} (got {t.duration:g})")
                elif fps is not None and t.duration * fps < 1:
                    c.err(
                        tp,
                        f"must last at least one frame ({1 / fps:.3f} s at {fps} fps) "
                        f"(got {t.duration:g})",
                    )
        # The transitions into and out of a clip must both fit inside it.
        prev_clip = parsed[i - 1] if i > 0 else None
        if (
            t is not None
            and prev_clip is not None
            and i - 1 not in unsure
            and prev_clip.overlap + t.duration > clip.duration + EPSILON
        ):
            c.err(
                f"{p}.transition.duration",
                f"with the {prev_clip.overlap:g} s transition into this clip it "
                f"must be <= {clip.duration - prev_clip.overlap:g} (the clip lasts "
                f"{clip.duration:g} s; got {t.duration:g})",
            )
        if len(c.errors) > errors_before:
            unsure.add(i)
        # Contiguity: each clip starts where the previous ends minus the overlap.
        if i == 0:
            if clip.start > EPSILON:
                c.err(
                    f"{p}.start", f"the first clip must start at 0 (got {clip.start:g})"
                )
            continue
        prev = parsed[i - 1]
        if prev is None or i - 1 in unsure:
            continue
        want = prev.end - prev.overlap
        if abs(clip.start - want) > EPSILON:
            what = "gap" if clip.start > want else "overlap"
            c.err(
                f"{p}.start",
                f"must be {want:g} (clips[{i - 1}] ends at {prev.end:g}"
                + (f" minus its {prev.overlap:g} s transition" if prev.overlap else "")
                + f"); got {clip.start:g}, a {what} of {abs(clip.start - want):g} s",
            )
    return tuple(x for x in parsed if x is not None)


def _grade(c: _Checker, value: Any, p: str = "grade") -> Grade | None:
    d = c.obj(p, value, (), ("preset", "cube", "intensity"))
    if d is None:
        return None
    if ("preset" in d) == ("cube" in d):
        c.err(p, "give exactly one of preset or cube")
    preset = _opt(lambda q, v: c.choice(q, v, GRADES), p, d, "preset", None)
    cube = _opt(lambda q, v: c.file(q, v, (".cube",)), p, d, "cube", None)
    intensity = _opt(lambda q, v: c.number(q, v, 0.0, 1.0), p, d, "intensity", 1.0)
    if preset is None and cube is None:
        return None
    return Grade(preset, cube if preset is None else None, intensity)


def _watermark(c: _Checker, value: Any) -> Watermark | None:
    p = "watermark"
    d = c.obj(p, value, ("file",), ("position", "opacity", "width", "margin"))
    if d is None:
        return None
    file = c.file(f"{p}.file", d["file"], WATERMARK_SUFFIXES) if "file" in d else None
    position = _opt(
        lambda q, v: c.choice(q, v, WATERMARK_POSITIONS),
        p,
        d,
        "position",
        "bottom_right",
    )
    opacity = _opt(lambda q, v: c.number(q, v, 0.0, 1.0), p, d, "opacity", 0.8)
    width = _opt(
        lambda q, v: c.number(q, v, MIN_WATERMARK_WIDTH, 1.0, lo_open=True),
        p,
        d,
        "width",
        0.12,
    )
    margin = _opt(
        lambda q, v: c.number(q, v, 0.0, MAX_WATERMARK_MARGIN), p, d, "margin", 0.03
    )
    if file is None:
        return None
    return Watermark(file, position, opacity, width, margin)


def _key_path(path: str, key: str) -> str:
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _json_value(c: _Checker, path: str, value: Any, depth: int) -> None:
    """Report anything in ``value`` that is not plain, finite, encodable JSON."""
    if depth > MAX_MANIFEST_DEPTH:
        c.err(path, f"nests too deeply (at most {MAX_MANIFEST_DEPTH} levels)")
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            c.err(path, f"must be a finite number (got {value})")
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            c.err(path, "must be valid Unicode (has a lone surrogate)")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _json_value(c, f"{path}[{i}]", item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                c.err(path, f"keys must be strings (got {_type_name(key)} {key!r})")
                continue
            where = _key_path(path, key)
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                c.err(where, "key must be valid Unicode (has a lone surrogate)")
                continue
            _json_value(c, where, item, depth + 1)
        return
    c.err(path, f"must be a JSON value (got {type(value).__name__})")


def _manifest(c: _Checker, value: Any) -> dict[str, Any] | None:
    """A copy of the manifest object, or None if it is not one or too big."""
    if not isinstance(value, dict):
        c.err("manifest", f"must be an object (got {_type_name(value)})")
        return None
    before = len(c.errors)
    _json_value(c, "manifest", value, 1)
    if len(c.errors) > before:
        return None
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except ValueError as e:  # e.g. an integer too long to convert to text
        c.err("manifest", f"cannot be encoded as JSON: {e}")
        return None
    size = len(text.encode("utf-8"))
    if size > MAX_MANIFEST_BYTES:
        c.err(
            "manifest",
            f"is too big: at most {MAX_MANIFEST_BYTES} bytes as compact UTF-8 JSON "
            f"(got {size} bytes)",
        )
        return None
    copied: dict[str, Any] = json.loads(text)
    return copied


def _text(c: _Checker, value: Any, end: float | None) -> tuple[TextItem, ...]:
    items: list[TextItem] = []
    for i, item in enumerate(c.array("text", value)):
        p = f"text[{i}]"
        kind = item.get("kind") if isinstance(item, dict) else None
        if not isinstance(item, dict):
            c.obj(p, item)
        elif kind == "subtitles":
            d = c.obj(p, item, ("kind", "file"))
            assert d is not None
            if "file" in d:
                f = c.file(f"{p}.file", d["file"], SUBTITLE_SUFFIXES)
                if f is not None:
                    items.append(Subtitles(f))
        elif kind == "title":
            d = c.obj(p, item, ("kind", "text", "start", "end"), ("position", "style"))
            assert d is not None
            text = c.string(f"{p}.text", d["text"]) if "text" in d else None
            start = c.time(f"{p}.start", d["start"]) if "start" in d else None
            stop = c.time(f"{p}.end", d["end"]) if "end" in d else None
            pos = _opt(
                lambda q, v: c.choice(q, v, POSITIONS), p, d, "position", "center"
            )
            style = _opt(c.identifier, p, d, "style", "default")
            if start is not None and stop is not None:
                if stop <= start:
                    c.err(f"{p}.end", f"must be after start ({start:g}) (got {stop:g})")
                elif end is not None and stop > end + EPSILON:
                    c.err(
                        f"{p}.end",
                        f"must be <= the timeline's end {end:g} (got {stop:g})",
                    )
                elif text is not None:
                    items.append(Title(text, start, stop, pos, style))
        elif kind == "karaoke":
            d = c.obj(p, item, ("kind", "words"), ("position", "style"))
            assert d is not None
            pos = _opt(
                lambda q, v: c.choice(q, v, POSITIONS), p, d, "position", "bottom"
            )
            style = _opt(c.identifier, p, d, "style", "default")
            if "words" in d:
                words = _words(c, f"{p}.words", d["words"], end)
                items.append(Karaoke(words, pos, style))
        elif "kind" not in item:
            c.err(f"{p}.kind", "is required")
        else:
            c.choice(f"{p}.kind", kind, ("subtitles", "title", "karaoke"))
    return tuple(items)


def _words(c: _Checker, path: str, value: Any, end: float | None) -> tuple[Word, ...]:
    words: list[Word] = []
    prev_end: float | None = None
    for j, item in enumerate(c.array(path, value, non_empty=True)):
        p = f"{path}[{j}]"
        d = c.obj(p, item, ("word", "start", "end"))
        if d is None:
            continue
        w = c.string(f"{p}.word", d["word"]) if "word" in d else None
        start = c.time(f"{p}.start", d["start"]) if "start" in d else None
        stop = c.time(f"{p}.end", d["end"]) if "end" in d else None
        if start is None or stop is None:
            continue
        if stop <= start:
            c.err(f"{p}.end", f"must be after start ({start:g}) (got {stop:g})")
            continue
        if prev_end is not None and start < prev_end - EPSILON:
            c.err(
                f"{p}.start",
                f"overlaps the previous word, which ends at {prev_end:g} "
                f"(got {start:g}); words must be in order and not overlap",
            )
        elif end is not None and stop > end + EPSILON:
            c.err(f"{p}.end", f"must be <= the timeline's end {end:g} (got {stop:g})")
        prev_end = stop
        if w is not None:
            words.append(Word(w, start, stop))
    return tuple(words)


def _parse(data: dict[str, Any] | str | Path) -> Any:
    if not isinstance(data, str | Path):
        return data  # a dict, or anything else for the checker to reject
    if isinstance(data, Path) or (
        isinstance(data, str) and not data.lstrip().startswith(("{", "["))
    ):
        try:
            text = Path(data).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TimelineError([("", f"cannot read the timeline file: {e}")]) from e
    else:
        text = data
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise TimelineError([("", f"not valid JSON: {e}")]) from e


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a timeline")


def load_timeline(data: dict[str, Any] | str | Path) -> Timeline:
    """Validate a timeline (dict, JSON text or JSON file); TimelineError if bad.

    Every problem is collected; the error's ``errors`` lists (path, message).
    """
    doc = _parse(data)
    c = _Checker()
    d = c.obj(
        "",
        doc,
        ("version", "output", "clips"),
        ("audio", "grade", "text", "watermark", "manifest", "cuts", "beats"),
    )
    if d is None:
        raise TimelineError(c.errors)
    if "version" in d:
        v = d["version"]
        if isinstance(v, bool) or v != VERSION:
            c.err("version", f"must be {VERSION} (got {_fmt(v)})")
    output, output_ok = _output(c, d["output"]) if "output" in d else (None, False)
    fps = output.fps if output is not None else None
    clips = _clips(c, d["clips"], fps) if "clips" in d else ()
    clips_ok = isinstance(d.get("clips"), list) and len(clips) == len(d["clips"])
    end: float | None = None
    if output is not None and output.duration is not None:
        end = output.duration
        if clips_ok and clips and end > clips[-1].end + EPSILON:
            c.err(
                "output.duration",
                f"must be <= the end of the last clip {clips[-1].end:g} (got {end:g})",
            )
    elif clips_ok and clips:
        end = clips[-1].end
    audio = _audio(c, d["audio"]) if "audio" in d else ()
    grade = _grade(c, d["grade"]) if "grade" in d else None
    text = _text(c, d["text"], end) if "text" in d else ()
    watermark = _watermark(c, d["watermark"]) if "watermark" in d else None
    manifest = _manifest(c, d["manifest"]) if "manifest" in d else None
    cuts = c.ascending("cuts", d["cuts"]) if "cuts" in d else ()
    beats = c.ascending("beats", d["beats"]) if "beats" in d else ()
    if c.errors or output is None or not output_ok:
        if not c.errors:  # pragma: no cover - defensive
            c.err("output", "is invalid")
        raise TimelineError(c.errors)
    return Timeline(
        output, clips, audio, grade, text, cuts, beats, VERSION, watermark, manifest
    )


# --------------------------------------------------------------------------
# JSON Schema


def timeline_json_schema() -> dict[str, Any]:
    """Version 1 as a JSON Schema (draft 2020-12).

    It checks shapes, types, ranges and names; the cross-field rules (clip
    contiguity, transition lengths, word order, ascending lists, move and focus
    on stills only) and the manifest's size and depth limits are only in
    ``load_timeline``.
    """
    time = {"type": "number", "minimum": 0}
    positive = {"type": "number", "exclusiveMinimum": 0}
    file = {
        "type": "string",
        "minLength": 1,
        "pattern": r"^(?![A-Za-z][A-Za-z0-9+.-]*://)"
        r"(?![Dd][Aa][Tt][Aa]:|[Ff][Ii][Ll][Ee]:|[Bb][Ll][Oo][Bb]:)[^\u0000\n\r]*$",
    }
    ident = {"type": "string", "pattern": _IDENTIFIER.pattern.join("^$")}
    position = {"enum": list(POSITIONS)}
    size = {"type": "integer", "minimum": 2, "maximum": 8192, "multipleOf": 2}
    framing = {
        "type": "object",
        "additionalProperties": False,
        "required": ["x", "y"],
        "properties": {
            "x": {"type": "number", "minimum": 0, "maximum": 1},
            "y": {"type": "number", "minimum": 0, "maximum": 1},
            "zoom": {"type": "number", "minimum": 1, "maximum": 16},
        },
    }
    ascending = {"type": "array", "items": time}
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://nano-banana.studio/schemas/timeline-v1.json",
        "title": "Nano Banana Studio timeline, version 1",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "output", "clips"],
        "properties": {
            "version": {"const": VERSION},
            "output": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "preset": {"enum": list(PRESETS)},
                    "width": size,
                    "height": size,
                    "fps": {"type": "integer", "minimum": MIN_FPS, "maximum": MAX_FPS},
                    "format": {"enum": list(FORMATS)},
                    "quality": {
                        "oneOf": [
                            {"enum": list(QUALITIES)},
                            {"type": "integer", "minimum": 0, "maximum": MAX_CRF},
                        ]
                    },
                    "duration": positive,
                    "loudness": {
                        "type": "number",
                        "minimum": MIN_LOUDNESS,
                        "maximum": MAX_LOUDNESS,
                    },
                    "true_peak": {
                        "type": "number",
                        "minimum": MIN_TRUE_PEAK,
                        "maximum": MAX_TRUE_PEAK,
                    },
                },
                "oneOf": [
                    {
                        "required": ["preset"],
                        "not": {
                            "anyOf": [
                                {"required": ["width"]},
                                {"required": ["height"]},
                                {"required": ["fps"]},
                            ]
                        },
                    },
                    {
                        "required": ["width", "height", "fps"],
                        "not": {"required": ["preset"]},
                    },
                ],
            },
            "audio": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["file"],
                    "properties": {
                        "file": file,
                        "role": {"enum": list(ROLES)},
                        "gain_db": {
                            "type": "number",
                            "minimum": MIN_GAIN_DB,
                            "maximum": MAX_GAIN_DB,
                        },
                        "fade_in": time,
                        "fade_out": time,
                        "start": time,
                        "offset": time,
                    },
                },
            },
            "clips": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["source", "start", "duration"],
                    "properties": {
                        "source": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["kind", "file"],
                            "properties": {
                                "kind": {"enum": ["still", "video"]},
                                "file": file,
                            },
                        },
                        "start": time,
                        "duration": positive,
                        "in": time,
                        "out": positive,
                        "speed": {
                            "type": "number",
                            "minimum": MIN_SPEED,
                            "maximum": MAX_SPEED,
                        },
                        "move": {
                            "oneOf": [
                                {"enum": list(MOVES)},
                                {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["from", "to"],
                                    "properties": {"from": framing, "to": framing},
                                },
                            ]
                        },
                        "focus": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["x", "y"],
                            "properties": {"x": unit, "y": unit},
                        },
                        "strength": {
                            "type": "number",
                            "minimum": 0,
                            "maximum": MAX_STRENGTH,
                        },
                        "grade": {"$ref": "#/properties/grade"},
                        "transition": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["type", "duration"],
                            "properties": {
                                "type": {"enum": list(TRANSITIONS)},
                                "duration": {
                                    "type": "number",
                                    "minimum": 0,
                                    "maximum": MAX_DURATION,
                                },
                            },
                        },
                    },
                },
            },
            "grade": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "preset": {"enum": list(GRADES)},
                    "cube": {"allOf": [file, {"pattern": r"\.[Cc][Uu][Bb][Ee]$"}]},
                    "intensity": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "oneOf": [{"required": ["preset"]}, {"required": ["cube"]}],
            },
            "text": {
                "type": "array",
                "items": {
                    "oneOf": [
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["kind", "file"],
                            "properties": {
                                "kind": {"const": "subtitles"},
                                "file": {
                                    "allOf": [
                                        file,
                                        {"pattern": r"\.([Ss][Rr][Tt]|[Aa][Ss][Ss])$"},
                                    ]
                                },
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["kind", "text", "start", "end"],
                            "properties": {
                                "kind": {"const": "title"},
                                "text": {"type": "string", "minLength": 1},
                                "start": time,
                                "end": time,
                                "position": position,
                                "style": ident,
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["kind", "words"],
                            "properties": {
                                "kind": {"const": "karaoke"},
                                "words": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["word", "start", "end"],
                                        "properties": {
                                            "word": {"type": "string", "minLength": 1},
                                            "start": time,
                                            "end": time,
                                        },
                                    },
                                },
                                "position": position,
                                "style": ident,
                            },
                        },
                    ]
                },
            },
            "watermark": {
                "type": "object",
                "additionalProperties": False,
                "required": ["file"],
                "properties": {
                    "file": {
                        "allOf": [
                            file,
                            {
                                "pattern": r"\.([Pp][Nn][Gg]|[Jj][Pp][Ee]?[Gg]"
                                r"|[Ww][Ee][Bb][Pp])$"
                            },
                        ]
                    },
                    "position": {"enum": list(WATERMARK_POSITIONS)},
                    "opacity": unit,
                    "width": {
                        "type": "number",
                        "exclusiveMinimum": MIN_WATERMARK_WIDTH,
                        "maximum": 1,
                    },
                    "margin": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": MAX_WATERMARK_MARGIN,
                    },
                },
            },
            "manifest": {"type": "object"},
            "cuts": ascending,
            "beats": ascending,
        },
    }
