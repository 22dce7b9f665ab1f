from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from workers.assembly.ffmpeg import run_ffmpeg
from workers.assembly.subtitles import (
    Cue,
    ass_time,
    burn_in,
    cue_text_to_ass,
    default_fontsdir,
    escape_ass_text,
    karaoke_ass,
    parse_srt,
    srt_to_ass,
    subtitles_filter,
    title_ass,
)
from workers.assembly.timeline import Word

SRT = """\ufeff1
00:00:01,000 --> 00:00:02,500
Hello <font color="red">there</font>
<i>second</i> line

3
00:00:00,200 --> 00:00:00,900 X1:10 X2:20
<b>First</b> by time

2
00:00:02,000 --> 00:00:04,000
Overlap {is} fine
"""


def test_parse_srt_valid() -> None:
    cues = parse_srt(SRT.replace("\n", "\r\n"))
    assert [c.start for c in cues] == [0.2, 1.0, 2.0]
    assert cues[0] == Cue(0.2, 0.9, "<b>First</b> by time")
    assert cues[1].end == 2.5
    assert cues[1].text == "Hello there\n<i>second</i> line"
    assert cues[2].text == "Overlap {is} fine"


def test_parse_srt_bad_timestamp_names_the_cue() -> None:
    bad = (
        "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:03;000 --> 00:00:04,000\nx\n"
    )
    with pytest.raises(ValueError, match=r"cue 2 \(line 6\).*malformed timestamp"):
        parse_srt(bad)


def test_parse_srt_end_before_start() -> None:
    bad = "7\n00:00:05,000 --> 00:00:04,000\nbackwards\n"
    with pytest.raises(ValueError, match=r"cue 7 \(line 2\).*not after"):
        parse_srt(bad)
    with pytest.raises(ValueError, match="cue 1"):
        parse_srt("1\n00:00:01,000 --> 00:00:01,000\nzero\n")
    with pytest.raises(ValueError, match="missing timing"):
        parse_srt("1\n\n")


def test_escaping() -> None:
    assert escape_ass_text("a{b}c") == "a\\{b\\}c"
    assert escape_ass_text("one\ntwo\r\nthree") == "one\\Ntwo\\Nthree"
    escaped = escape_ass_text("\\N{\\i1}")
    # No backslash is directly followed by a letter or an unescaped brace.
    assert not re.search(r"\\[A-Za-z]", escaped)
    assert "{" not in escaped.replace("\\{", "")
    assert cue_text_to_ass("<i>x{</i>\ny") == "{\\i1}x\\{{\\i0}\\Ny"


def test_srt_to_ass_and_title() -> None:
    script = srt_to_ass(parse_srt(SRT), 320, 180)
    assert "PlayResX: 320" in script and "PlayResY: 180" in script
    assert "DejaVu Sans" in script
    assert (
        "Dialogue: 0,0:00:00.20,0:00:00.90,Bottom,,0,0,0,,{\\b1}First{\\b0} by time"
        in script
    )
    assert ass_time(3723.456) == "1:02:03.46"
    title = title_ass("Big {Title}", 1.0, 3.0, "lower_third", 640, 360)
    assert "LowerThird,,0,0,0,,{\\fad(200,200)}Big \\{Title\\}" in title
    with pytest.raises(ValueError, match="position"):
        title_ass("x", 0, 1, "sideways", 640, 360)
    with pytest.raises(ValueError):
        title_ass("x", 2, 1)


def _k_tags(script: str) -> list[tuple[str, int]]:
    line = next(ln for ln in script.splitlines() if ln.startswith("Dialogue:"))
    return [(tag, int(n)) for tag, n in re.findall(r"\\(kf|k)(\d+)", line)]


def test_karaoke_durations() -> None:
    words = [
        Word("one", 1.004, 1.337),
        Word("two", 1.5, 2.0),
        Word("three", 2.0, 2.756),
    ]
    script = karaoke_ass([words], 1280, 720)
    tags = _k_tags(script)
    assert tags == [("kf", 34), ("k", 16), ("kf", 50), ("kf", 76)]
    assert "Dialogue: 0,0:00:01.00,0:00:02.76,Bottom" in script
    span_cs = round(words[-1].end * 100) - round(words[0].start * 100)
    assert sum(n for _, n in tags) == span_cs
    with pytest.raises(ValueError, match="word 2"):
        karaoke_ass([[Word("a", 0, 1), Word("b", 0.5, 2)]], 320, 180)


def test_subtitles_filter_escapes_paths() -> None:
    f = subtitles_filter(Path("/tmp/a:b,c/s'x.ass"), Path("/fonts"))
    assert f == "ass=filename=/tmp/a\\\\:b\\,c/s\\\\\\'x.ass:fontsdir=/fonts"
    assert (default_fontsdir() / "DejaVuSans.ttf").is_file()
    assert (default_fontsdir() / "DejaVuSans-Bold.ttf").is_file()


# --- real renders -------------------------------------------------------------


@pytest.fixture(scope="module")
def black_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "black.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=black:s=320x180:r=10:d=2"]
        + ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
        output=path,
    )
    return path


def _frames(path: Path) -> dict[float, np.ndarray]:
    with av.open(str(path)) as container:
        return {
            round(float(f.time), 2): f.to_ndarray(format="rgb24").astype(np.float64)
            for f in container.decode(video=0)
        }


def test_burn_in_subtitle(tmp_path: Path, black_clip: Path) -> None:
    script = srt_to_ass([Cue(0.5, 1.5, "HELLO")], 320, 180)
    out = tmp_path / "o ut" / "subs.mp4"
    burn_in(black_clip, script, out, workdir=tmp_path / "wo:rk,d'ir")
    frames = _frames(out)
    assert len(frames) == 20
    for t, img in frames.items():
        luma = img.mean(axis=2)
        bright_bottom = int((luma[120:] > 128).sum())
        assert (luma[:120] > 128).sum() == 0
        if 0.6 <= t <= 1.4:
            assert bright_bottom > 30, t
        elif t < 0.45 or t > 1.55:
            assert bright_bottom == 0, t


def _sung_fractions(img: np.ndarray) -> tuple[float, float]:
    """Share of sung (yellow: high R and G, low B) pixels among the bright text
    pixels in the left and right halves of the text's bounding box (the rest
    are white, unsung)."""
    mask = img.max(axis=2) > 150
    ys, xs = np.nonzero(mask)
    assert len(xs) > 30
    mid = (xs.min() + xs.max()) / 2
    columns = np.arange(img.shape[1])[None, :]
    sung = (img[..., 0] > 150) & (img[..., 1] > 130) & (img[..., 2] < 120)
    fractions = []
    for half in (mask & (columns < mid), mask & (columns > mid)):
        fractions.append(float(sung[half].mean()))
    return fractions[0], fractions[1]


def test_burn_in_karaoke(tmp_path: Path, black_clip: Path) -> None:
    words = [Word("HELLO", 0.2, 0.85), Word("WORLD", 0.85, 1.55)]
    script = karaoke_ass([words], 320, 180)
    out = tmp_path / "karaoke.mp4"
    burn_in(black_clip, script, out, workdir=tmp_path)
    frames = {round(t * 10): img for t, img in _frames(out).items()}
    before = frames[1]
    assert not (before.max(axis=2) > 150).any()  # line not shown yet
    left, right = _sung_fractions(frames[8])  # word 1 nearly all sung
    assert left > 0.75 and right < 0.2, (left, right)
    left, right = _sung_fractions(frames[15])  # word 2 nearly all sung
    assert left > 0.9 and right > 0.75, (left, right)
    assert not (frames[17].max(axis=2) > 150).any()  # line is gone


def test_burn_in_renders_escaped_text_literally(
    tmp_path: Path, black_clip: Path
) -> None:
    # Unescaped, "{\an8}" would be an override block (moving nothing to the
    # top); escaped, it is drawn as text at the bottom.
    script = srt_to_ass([Cue(0.0, 2.0, "{\\an8}")], 320, 180)
    out = tmp_path / "escaped.mp4"
    burn_in(black_clip, script, out, workdir=tmp_path)
    img = next(iter(_frames(out).values()))
    luma = img.mean(axis=2)
    assert (luma[120:] > 128).sum() > 20
    assert (luma[:120] > 128).sum() == 0
