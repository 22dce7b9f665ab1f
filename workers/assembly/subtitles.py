"""Text on video: SRT parsing, ASS generation (subtitles, karaoke, title cards)
and burning an ASS script into a video with ffmpeg's libass ``ass`` filter.

Generated scripts set ``PlayResX``/``PlayResY`` to the video size, so sizes and
margins in a style are in output pixels. Fonts: nothing is shipped; libass is
pointed at the DejaVu fonts that matplotlib carries (``fontsdir=``) and every
style names "DejaVu Sans", so rendering does not depend on system fonts.

Karaoke colours follow ASS semantics: ``PrimaryColour`` is the sung (filled)
colour and ``SecondaryColour`` the unsung one; ``\\kf`` sweeps a word from the
second to the first over the word's own duration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.assembly.ffmpeg import input_args, run_ffmpeg
from workers.assembly.grading import escape_filter_value
from workers.assembly.timeline import Word

DEFAULT_FONT = "DejaVu Sans"

# Colours as (R, G, B); converted to ASS's &HAABBGGRR when written.
RGB = tuple[int, int, int]

# Style presets. Sizes and margins are fractions of the video height (margins
# left/right of the width) so one preset works at every resolution.
STYLES: dict[str, dict[str, Any]] = {
    "default": {
        "font": DEFAULT_FONT,
        "size": 0.06,
        "bold": False,
        "primary": (255, 255, 255),
        "secondary": (255, 255, 255),
        "outline_colour": (0, 0, 0),
        "outline": 0.004,
        "shadow": 0.002,
        "margin_v": 0.05,
        "margin_h": 0.05,
    },
    "karaoke": {
        "font": DEFAULT_FONT,
        "size": 0.08,
        "bold": True,
        "primary": (255, 220, 0),  # sung
        "secondary": (255, 255, 255),  # not yet sung
        "outline_colour": (0, 0, 0),
        "outline": 0.005,
        "shadow": 0.0,
        "margin_v": 0.06,
        "margin_h": 0.05,
    },
    "title": {
        "font": DEFAULT_FONT,
        "size": 0.11,
        "bold": True,
        "primary": (255, 255, 255),
        "secondary": (255, 255, 255),
        "outline_colour": (0, 0, 0),
        "outline": 0.006,
        "shadow": 0.004,
        "margin_v": 0.08,
        "margin_h": 0.06,
    },
}

# Position -> (ASS numpad alignment, extra vertical margin as a fraction of height).
POSITIONS: dict[str, tuple[int, float]] = {
    "bottom": (2, 0.0),
    "top": (8, 0.0),
    "center": (5, 0.0),
    "lower_third": (1, 0.17),  # left-aligned, a third of the way up
}

_STYLE_NAMES = {
    "bottom": "Bottom",
    "top": "Top",
    "center": "Center",
    "lower_third": "LowerThird",
}


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` may hold ``<i>``/``<b>`` tags and newlines."""

    start: float
    end: float
    text: str


# --- SRT --------------------------------------------------------------------

_TIME = r"(\d{1,3}):(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<\s*(/?)\s*([a-zA-Z]+)[^>]*>")


def _seconds(h: str, m: str, s: str, frac: str | None) -> float:
    millis = int((frac or "0").ljust(3, "0"))
    return int(h) * 3600 + int(m) * 60 + int(s) + millis / 1000


def _clean_tags(text: str) -> str:
    """Strip HTML-ish tags except ``<i>``/``<b>`` (normalised to lower case)."""

    def keep(match: re.Match[str]) -> str:
        name = match.group(2).lower()
        return f"<{match.group(1)}{name}>" if name in ("i", "b") else ""

    return _TAG.sub(keep, text)


def parse_srt(text: str) -> list[Cue]:
    """Cues of an SRT file, sorted by start time (overlaps are kept).

    Raises ValueError naming the cue number and line for a missing or malformed
    timing line, a minute/second out of range, or an end not after the start.
    """
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cues: list[Cue] = []
    i = 0
    count = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        count += 1
        block_line = i + 1
        label = f"cue {count}"
        if lines[i].strip().isdigit():
            label = f"cue {lines[i].strip()}"
            i += 1
        if i >= len(lines) or not lines[i].strip():
            raise ValueError(f"{label} (line {block_line}): missing timing line")
        timing = lines[i]
        match = _TIMING.match(timing)
        if not match:
            raise ValueError(
                f"{label} (line {i + 1}): malformed timestamp {timing.strip()!r}; "
                "expected HH:MM:SS,mmm --> HH:MM:SS,mmm"
            )
        g = match.groups()
        for minutes, seconds in ((g[1], g[2]), (g[5], g[6])):
            if int(minutes) > 59 or int(seconds) > 59:
                raise ValueError(
                    f"{label} (line {i + 1}): timestamp out of range in "
                    f"{timing.strip()!r}"
                )
        start = _seconds(*g[:4])
        end = _seconds(*g[4:])
        if end <= start:
            raise ValueError(
                f"{label} (line {i + 1}): end {end:.3f}s is not after "
                f"start {start:.3f}s"
            )
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip():
            body.append(lines[i].strip())
            i += 1
        cues.append(Cue(start, end, _clean_tags("\n".join(body))))
    cues.sort(key=lambda c: (c.start, c.end))  # stable: ties keep file order
    return cues


# --- ASS --------------------------------------------------------------------


def escape_ass_text(text: str) -> str:
    """User text made literal in an ASS Dialogue line.

    Backslashes get a word joiner after them so ``\\N`` or ``\\i1`` typed by a
    user stays text; braces become libass's ``\\{``/``\\}`` escapes so they
    cannot open an override block; newlines become ``\\N``.
    """
    text = text.replace("\\", "\\\u2060")
    text = text.replace("{", "\\{").replace("}", "\\}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "\\N")


def ass_time(seconds: float) -> str:
    """``H:MM:SS.cc`` (centiseconds) for an ASS event."""
    return _cs_time(_cs(seconds))


def _cs(seconds: float) -> int:
    if seconds < 0:
        raise ValueError(f"negative time {seconds}")
    return int(round(seconds * 100))


def _cs_time(cs: int) -> str:
    h, rest = divmod(cs, 360000)
    m, rest = divmod(rest, 6000)
    s, c = divmod(rest, 100)
    return f"{h}:{m:02d}:{s:02d}.{c:02d}"


def _colour(rgb: RGB, alpha: int = 0) -> str:
    r, g, b = (max(0, min(255, int(v))) for v in rgb)
    return f"&H{alpha:02X}{b:02X}{g:02X}{r:02X}"


def _preset(style: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(style, dict):
        return {**STYLES["default"], **style}
    try:
        return STYLES[style]
    except KeyError:
        raise ValueError(
            f"unknown text style {style!r}; choose from {sorted(STYLES)}"
        ) from None


def _check_position(position: str) -> str:
    if position not in POSITIONS:
        raise ValueError(
            f"unknown text position {position!r}; choose from {sorted(POSITIONS)}"
        )
    return _STYLE_NAMES[position]


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid video size {width}x{height}")


def ass_header(width: int, height: int, style: str | dict[str, Any] = "default") -> str:
    """Script info and one style per position (Bottom, Top, Center, LowerThird)."""
    _check_size(width, height)
    p = _preset(style)
    size = max(1, round(p["size"] * height))
    outline = round(p["outline"] * height, 2)
    shadow = round(p["shadow"] * height, 2)
    margin_h = round(p["margin_h"] * width)
    bold = -1 if p["bold"] else 0
    rows = []
    for position, name in _STYLE_NAMES.items():
        alignment, extra_v = POSITIONS[position]
        margin_v = round((p["margin_v"] + extra_v) * height)
        rows.append(
            f"Style: {name},{p['font']},{size},{_colour(p['primary'])},"
            f"{_colour(p['secondary'])},{_colour(p['outline_colour'])},"
            f"{_colour((0, 0, 0), 0x80)},{bold},0,0,0,100,100,0,0,1,"
            f"{outline},{shadow},{alignment},{margin_h},{margin_h},{margin_v},1"
        )
    return "\n".join(
        [
            "[Script Info]",
            "ScriptType: v4.00+",
            f"PlayResX: {width}",
            f"PlayResY: {height}",
            "WrapStyle: 0",
            "ScaledBorderAndShadow: yes",
            "YCbCr Matrix: None",
            "",
            "[V4+ Styles]",
            "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
            "OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, "
            "ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
            "Alignment, MarginL, MarginR, MarginV, Encoding",
            *rows,
            "",
            "[Events]",
            "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, "
            "Effect, Text",
        ]
    )


def _dialogue(start_cs: int, end_cs: int, style_name: str, text: str) -> str:
    return (
        f"Dialogue: 0,{_cs_time(start_cs)},{_cs_time(end_cs)},{style_name},,0,0,0,,"
        f"{text}"
    )


_FORMAT_TAG = re.compile(r"(</?[ib]>)")
_OVERRIDES = {"<i>": r"{\i1}", "</i>": r"{\i0}", "<b>": r"{\b1}", "</b>": r"{\b0}"}


def cue_text_to_ass(text: str) -> str:
    """Cue text with ``<i>``/``<b>`` as ASS overrides and the rest escaped."""
    parts = _FORMAT_TAG.split(text)
    return "".join(_OVERRIDES.get(part) or escape_ass_text(part) for part in parts)


def _script(header: str, events: Iterable[str]) -> str:
    return "\n".join([header, *events]) + "\n"


def srt_to_ass(
    cues: Sequence[Cue],
    width: int,
    height: int,
    style: str | dict[str, Any] = "default",
    *,
    position: str = "bottom",
) -> str:
    """An ASS script showing each cue at ``position``."""
    name = _check_position(position)
    events = [
        _dialogue(
            _cs(c.start),
            max(_cs(c.end), _cs(c.start) + 1),
            name,
            cue_text_to_ass(c.text),
        )
        for c in cues
    ]
    return _script(ass_header(width, height, style), events)


def karaoke_events(words: Sequence[Word], style_name: str = "Bottom") -> str:
    """One Dialogue line for a sung line: ``\\kf`` per word, ``\\k`` for gaps.

    Times are rounded to centiseconds at the word boundaries (not per
    duration), so the tags sum exactly to the line's span and each word's
    highlight starts and ends on its own rounded times.
    """
    if not words:
        raise ValueError("a karaoke line needs at least one word")
    parts: list[str] = []
    line_start = _cs(words[0].start)
    cursor = line_start
    for n, w in enumerate(words, 1):
        if w.end <= w.start:
            raise ValueError(f"karaoke word {n} ({w.word!r}): end is not after start")
        start, end = _cs(w.start), _cs(w.end)
        if start < cursor:
            raise ValueError(
                f"karaoke word {n} ({w.word!r}) starts before the previous word ends"
            )
        if start > cursor:
            parts.append(f"{{\\k{start - cursor}}}")
        text = escape_ass_text(w.word)
        if n < len(words):
            text += " "
        parts.append(f"{{\\kf{end - start}}}{text}")
        cursor = end
    return _dialogue(line_start, cursor, style_name, "".join(parts))


def karaoke_ass(
    lines: Sequence[Sequence[Word]],
    width: int,
    height: int,
    style: str | dict[str, Any] = "karaoke",
    *,
    position: str = "bottom",
) -> str:
    """An ASS script with one karaoke Dialogue per line of words.

    Each line shows from its first word's start to its last word's end; unsung
    words use the style's secondary colour and fill with the primary colour.
    """
    name = _check_position(position)
    events = [karaoke_events(line, name) for line in lines]
    return _script(ass_header(width, height, style), events)


def title_ass(
    text: str,
    start: float,
    end: float,
    position: str = "center",
    width: int = 1920,
    height: int = 1080,
    style: str | dict[str, Any] = "title",
    *,
    fade: float = 0.2,
) -> str:
    """An ASS script with one title card, faded in and out over ``fade`` seconds."""
    if end <= start:
        raise ValueError(f"title end {end} is not after start {start}")
    name = _check_position(position)
    fade_ms = max(0, min(int(fade * 1000), int((end - start) * 500)))
    body = (f"{{\\fad({fade_ms},{fade_ms})}}" if fade_ms else "") + escape_ass_text(
        text
    )
    event = _dialogue(_cs(start), max(_cs(end), _cs(start) + 1), name, body)
    return _script(ass_header(width, height, style), [event])


# --- ffmpeg -----------------------------------------------------------------


def default_fontsdir() -> Path:
    """Folder of matplotlib's DejaVu fonts (DejaVuSans.ttf, DejaVuSans-Bold.ttf)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def subtitles_filter(ass_path: Path, fontsdir: Path | None = None) -> str:
    """``ass=filename=<path>:fontsdir=<dir>`` escaped for a filtergraph."""
    fonts = Path(fontsdir) if fontsdir is not None else default_fontsdir()
    return (
        f"ass=filename={escape_filter_value(str(Path(ass_path).absolute()))}"
        f":fontsdir={escape_filter_value(str(fonts.absolute()))}"
    )


def burn_in(video: Path, ass_text: str, out: Path, *, workdir: Path) -> None:
    """Render ``ass_text`` onto ``video`` into ``out`` (H.264 yuv420p, audio
    copied when there is any). The script is written into ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(ass_text.encode("utf-8")).hexdigest()[:16]
    ass_path = workdir / f"subs-{digest}.ass"
    ass_path.write_text(ass_text, encoding="utf-8")
    run_ffmpeg(
        [
            *input_args(video),
            "-map",
            "0:v:0",
            "-map",
            "0:a?",
            "-vf",
            subtitles_filter(ass_path),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "18",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "copy",
        ],
        output=Path(out),
    )
