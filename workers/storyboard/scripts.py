"""Reading a user's script for a music video: Markdown, plain text or PDF.

A script is cut into scenes, in this order of precedence:

1. Markdown headings: ``##`` or deeper, or ``#`` when the document has more than
   one level-1 heading (a lone ``#`` heading is the title). Text before the first
   scene heading is an introduction, not a scene; a note says so when it is longer
   than a few sentences, since the user may have meant it as a scene.
2. Without headings, a line that opens with a timestamp (``0:12``, ``[1:02:03]``,
   ``0:12-0:24`` …) or a screenplay line (``Scene 3:``, ``INT.``, ``EXT.``).
3. Otherwise every blank-line-separated paragraph.

A timestamp may open a heading or, when the heading has none, the first line under
it. Only an opening timestamp counts: "## John 3:16" is a heading, not a time.
Problems the user can fix are :class:`ScriptError`; things we repaired are notes.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pypdf import PdfReader

__all__ = [
    "MAX_SCENES",
    "MAX_SCRIPT_BYTES",
    "Script",
    "ScriptError",
    "ScriptScene",
    "load_script",
    "parse_markdown",
    "parse_text",
    "read_pdf",
]

MAX_SCRIPT_BYTES = 2 * 1024 * 1024
MAX_SCENES = 500
MAX_SECONDS = 6 * 3600
# An introduction longer than this is probably a scene without a heading.
LONG_PREAMBLE_WORDS = 50
MARKDOWN_SUFFIXES = (".md", ".markdown", ".txt")
_TOO_BIG = f"the script is over {MAX_SCRIPT_BYTES // (1024 * 1024)} MiB of text"

_TIME = r"\d{1,3}(?::\d{2}){1,2}(?:\.\d+)?"
_STAMP = re.compile(
    rf"^\s*[\[(]?\s*(?P<start>{_TIME})(?:\s*[\])])?"
    rf"(?:\s*(?:[-–—]|\bto\b)\s*[\[(]?\s*(?P<end>{_TIME})(?:\s*[\])])?)?"
    r"(?![\w:])"
)
_AFTER_STAMP = re.compile(r"^[\s\-–—:|.,]+")
# "Scene" in any case, but INT./EXT. only in capitals: "Int." in prose is rare,
# "INT." anywhere else rarer still.
_SLUG = re.compile(
    r"^(?:(?i:scene)\s+\d+[a-z]?\b\s*(?:[:.\-–—]|$)"
    r"|(?:INT\.?/EXT|EXT\.?/INT|INT|EXT|I/E)\.?\s)"
)
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_BULLET = re.compile(r"^(?:([-*+•])|(\d{1,3}[.)]))\s+(.*)$")
_RULE = re.compile(r"^(?:[-*_]\s*){3,}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>~|])")
# Escaped characters hide in the private-use area while the markup is stripped.
_HIDDEN = re.compile("[\ue000-\ue07f]")
_INLINE = [
    (re.compile(r"<(https?://[^>\s]+)>"), r"\1"),
    (re.compile(r"<!--.*?-->|</?[A-Za-z][^>]*>"), ""),
    (re.compile(r"!?\[([^\]]*)\](?:\([^)]*\)|\[[^\]]*\])"), r"\1"),
    (re.compile(r"(`+)(.+?)\1"), r"\2"),
    (re.compile(r"(\*\*|__|~~)(.+?)\1"), r"\2"),
    (re.compile(r"\*(?!\s)(.+?)(?<!\s)\*"), r"\1"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"\1"),
]


class ScriptError(ValueError):
    """The script cannot be read; the message is fit to show a user."""


@dataclass(frozen=True)
class ScriptScene:
    heading: str
    text: str
    start: float | None = None
    end: float | None = None
    characters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    title: str
    style: str | None
    characters: tuple[str, ...]
    character_notes: dict[str, str]
    scenes: tuple[ScriptScene, ...]
    notes: tuple[str, ...] = ()

    def timed(self) -> bool:
        return any(scene.start is not None for scene in self.scenes)


@dataclass
class _Draft:
    heading: str
    start: float | None
    end: float | None
    body: list[str] = field(default_factory=list)


_Lines = list[tuple[int, str]]


def parse_markdown(text: str) -> Script:
    lines = _normalise(text).split("\n")
    meta, first = _frontmatter(lines)
    title, style, characters, character_notes, notes = _meta_fields(meta, lines)
    body_text = "\n".join(lines[first:])
    # Multi-line comments go before the split; keeping their newlines keeps the
    # line numbers in error messages right.
    body_text = re.sub(
        r"<!--.*?-->", lambda m: "\n" * m.group().count("\n"), body_text, flags=re.S
    )
    body = [(first + i + 1, line) for i, line in enumerate(body_text.split("\n"))]
    heads: dict[int, tuple[int, str]] = {}
    for number, line in body:
        if match := _HEADING.match(line):
            words = re.sub(r"[ \t]+#+[ \t]*$|^#+$", "", (match.group(2) or "").strip())
            heads[number] = (len(match.group(1)), _strip_inline(words).strip())
    level1 = [number for number, (level, _) in heads.items() if level == 1]
    if len(level1) == 1:
        lone = heads.pop(level1[0])[1]
        title = title or lone
        body = [(number, line) for number, line in body if number != level1[0]]
    if heads:
        drafts, preamble = _split_at_headings(body, heads)
    else:
        drafts, preamble = _split_plain(body, markup=True)
    script = Script(title, style, characters, character_notes, (), tuple(notes))
    return _finish(script, drafts, preamble, markup=True)


def parse_text(text: str, title: str = "") -> Script:
    body = list(enumerate(_normalise(text).split("\n"), start=1))
    drafts, preamble = _split_plain(body, markup=False)
    return _finish(Script(title, None, (), {}, ()), drafts, preamble, markup=False)


def read_pdf(data: bytes) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        # Many PDFs are encrypted only against editing, with an empty password.
        if reader.is_encrypted and not reader.decrypt(""):
            raise ScriptError("the PDF is password-protected: upload it unlocked")
        pages: list[str] = []
        size = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            size += len(pages[-1])
            if size > MAX_SCRIPT_BYTES:
                break  # enough for parse_text to refuse it; no need to read on
    except ScriptError:
        raise
    except Exception as exc:
        # pypdf meets hostile files with many exception types; all mean the same
        # thing to the user.
        raise ScriptError(f"the PDF cannot be read ({exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise ScriptError(
            "the PDF has no text layer (a scan?): export the script from its editor"
            " as a PDF with text, or upload it as .txt or .md"
        )
    return text


def load_script(path: Path, data: bytes | None = None) -> Script:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        raw = path.read_bytes() if data is None else data
        return parse_text(read_pdf(raw), title=path.stem)
    if suffix not in MARKDOWN_SUFFIXES:
        raise ScriptError(
            f"a script must be a .md, .markdown, .txt or .pdf file, not '{suffix}'"
        )
    raw = path.read_bytes() if data is None else data
    if len(raw) > MAX_SCRIPT_BYTES:
        raise ScriptError(_TOO_BIG)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ScriptError(
            f"line {line}: the script is not UTF-8 text; save it as UTF-8"
        ) from exc
    return parse_markdown(text)


def _normalise(text: str) -> str:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise ScriptError(_TOO_BIG)
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def _frontmatter(lines: list[str]) -> tuple[dict[str, Any], int]:
    """The frontmatter mapping and the index of the first line after it."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    close = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
    if not close:
        raise ScriptError("line 1: the frontmatter opened here has no closing '---'")
    try:
        meta = yaml.safe_load("\n".join(lines[1:close]))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "it cannot be parsed"
        message = f"line {line}: the frontmatter is not valid YAML: {problem}"
        raise ScriptError(message) from exc
    if meta is None:
        return {}, close + 1
    if not isinstance(meta, dict):
        raise ScriptError("line 2: the frontmatter must be 'key: value' lines")
    return meta, close + 1


def _meta_fields(
    meta: dict[str, Any], lines: list[str]
) -> tuple[str, str | None, tuple[str, ...], dict[str, str], list[str]]:
    def wrong(key: str, expected: str) -> ScriptError:
        line = next(
            (i + 1 for i, text in enumerate(lines) if text.startswith(f"{key}:")), 1
        )
        return ScriptError(f"line {line}: frontmatter '{key}' must be {expected}")

    known = ("title", "style", "characters")
    notes = [
        f"unknown frontmatter key '{key}' ignored" for key in meta if key not in known
    ]
    title = "" if meta.get("title") is None else meta["title"]
    style = meta.get("style")
    if not isinstance(title, str):
        raise wrong("title", 'text (put it in quotes: title: "1999")')
    if style is not None and not isinstance(style, str):
        raise wrong("style", "the name of a style preset")
    names: list[str] = []
    descriptions: dict[str, str] = {}
    entries = meta.get("characters") or []
    if not isinstance(entries, list):
        raise wrong("characters", "a list of names or of 'name:' entries")
    for entry in entries:
        name, description = entry, None
        if isinstance(entry, dict):
            name, description = entry.get("name"), entry.get("description")
            notes += [
                f"unknown key '{key}' of character '{name}' ignored"
                for key in entry
                if key not in ("name", "description")
            ]
        if not isinstance(name, str) or not name.strip():
            raise wrong("characters", "a list of names or of 'name:' entries")
        if description is not None and not isinstance(description, str):
            raise wrong("characters", "a list whose descriptions are text")
        name = name.strip()
        if name.casefold() in (listed.casefold() for listed in names):
            notes.append(f"character '{name}' is listed twice: the second ignored")
            continue
        names.append(name)
        if description:
            descriptions[name] = " ".join(description.split())
    style = style.strip() if style else None
    return title.strip(), style or None, tuple(names), descriptions, notes


def _stamp(line: str, number: int) -> tuple[float | None, float | None, str]:
    """The timestamp (or range) opening a line, and the rest of the line."""
    match = _STAMP.match(line)
    if not match:
        return None, None, line
    end = match.group("end")
    rest = _AFTER_STAMP.sub("", line[match.end() :])
    start = _seconds(match.group("start"), number)
    return start, _seconds(end, number) if end else None, rest


def _seconds(token: str, number: int) -> float:
    parts = token.split(":")
    hours = int(parts[0]) if len(parts) == 3 else 0
    minutes, seconds = int(parts[-2]), float(parts[-1])
    if seconds >= 60 or (len(parts) == 3 and minutes >= 60):
        raise ScriptError(f"line {number}: {token} is not a time (00-59 after ':')")
    total = hours * 3600 + minutes * 60 + seconds
    if total > MAX_SECONDS:
        raise ScriptError(f"line {number}: {token} is past the 6-hour limit")
    return total


def _split_at_headings(
    body: _Lines, heads: dict[int, tuple[int, str]]
) -> tuple[list[_Draft], list[str]]:
    drafts: list[_Draft] = []
    preamble: list[str] = []
    for number, line in body:
        if number in heads:
            start, end, rest = _stamp(heads[number][1], number)
            drafts.append(_Draft(rest, start, end))
        elif drafts:
            draft = drafts[-1]
            opens_body = not any(text.strip() for text in draft.body)
            if draft.start is None and opens_body and line.strip():
                start, end, rest = _stamp(_strip_inline(line), number)
                if start is not None:
                    draft.start, draft.end, line = start, end, rest
            draft.body.append(line)
        else:
            preamble.append(line)
    return drafts, preamble


def _split_plain(body: _Lines, markup: bool) -> tuple[list[_Draft], list[str]]:
    drafts: list[_Draft] = []
    preamble: list[str] = []
    for number, line in body:
        plain = _strip_inline(line).strip() if markup else line.strip()
        start, end, rest = _stamp(plain, number)
        if start is not None:
            drafts.append(_Draft(rest, start, end))
        elif _SLUG.match(plain):
            drafts.append(_Draft(plain, None, None))
        else:
            (drafts[-1].body if drafts else preamble).append(line)
    if drafts:
        return drafts, preamble
    paragraph: _Draft | None = None
    for _, line in body:
        if not line.strip() or (markup and _RULE.match(line.strip())):
            paragraph = None
        elif paragraph is None:
            paragraph = _Draft("", None, None, [line])
            drafts.append(paragraph)
        else:
            paragraph.body.append(line)
    return drafts, []


def _finish(
    script: Script, drafts: list[_Draft], preamble: list[str], markup: bool
) -> Script:
    """Checks the times, finds the characters and caps the scene count."""
    notes = list(script.notes)
    words = len(_clean_body(preamble, markup).split())
    if drafts and words > LONG_PREAMBLE_WORDS:
        notes.append(f"the {words} words before the first scene are not in any scene")
    if len(drafts) > MAX_SCENES:
        notes.append(
            f"the script has {len(drafts)} scenes: kept the first {MAX_SCENES}"
        )
        drafts = drafts[:MAX_SCENES]
    scenes: list[ScriptScene] = []
    previous: tuple[int, float] | None = None
    for draft in drafts:
        heading = " ".join(draft.heading.split())
        text = _clean_body(draft.body, markup)
        if not (heading or text or draft.start is not None):
            continue
        index, start, end = len(scenes) + 1, draft.start, draft.end
        if start is not None and previous is not None and start <= previous[1]:
            relation = "before" if start < previous[1] else "the same as"
            notes.append(
                f"scene {index}'s timestamp {_clock(start)} is {relation} scene"
                f" {previous[0]}'s {_clock(previous[1])}: ignored"
            )
            start = end = None
        if start is not None and end is not None and end <= start:
            notes.append(
                f"scene {index}'s end {_clock(end)} is not after its start"
                f" {_clock(start)}: ignored"
            )
            end = None
        if start is not None:
            previous = (index, start)
        seen = f"{heading}\n{text}"
        mentioned = tuple(
            name
            for name in script.characters
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", seen, re.IGNORECASE)
        )
        scenes.append(ScriptScene(heading, text, start, end, mentioned))
    if not scenes:
        raise ScriptError(
            "the script has no scenes: start each scene with a '## ' heading, a"
            " timestamp such as 0:12, or 'Scene 1:', or separate them with blank lines"
        )
    return replace(script, scenes=tuple(scenes), notes=tuple(notes))


def _clean_body(lines: list[str], markup: bool) -> str:
    """One line per paragraph, whitespace collapsed; list items keep their lines."""
    out: list[str] = []
    current: list[str] = []
    for raw in [*lines, ""]:
        line = raw.strip()
        if markup:
            line = re.sub(r"^(?:>\s?)+", "", line).strip()
            line = "" if _RULE.match(line) else line
        bullet = _BULLET.match(line)
        if (not line or bullet) and current:
            out.append(" ".join(" ".join(current).split()))
            current = []
        if bullet:
            marker = "-" if bullet.group(1) else bullet.group(2)
            line = f"{marker} {bullet.group(3)}"
        if markup:
            line = _strip_inline(line)
        if line.strip():
            current.append(line)
    return "\n".join(out)


def _strip_inline(text: str) -> str:
    text = _ESCAPED.sub(lambda m: chr(0xE000 + ord(m.group(1))), text)
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    text = _HIDDEN.sub(lambda m: chr(ord(m.group()) - 0xE000), text)
    return html.unescape(text)


def _clock(seconds: float) -> str:
    """0:45, 1:02:03 or 0:12.5: the way the user wrote it, give or take."""
    seconds = round(seconds, 2)
    whole = int(seconds)
    hours, minutes, rest = whole // 3600, whole // 60 % 60, whole % 60
    text = f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"
    fraction = seconds - whole
    return text + (f"{fraction:.2f}".rstrip("0")[1:] if fraction else "")
