"""Transitions between two clips, as fragments of one ffmpeg filtergraph.

The renderer builds a single filtergraph for the whole timeline; each join is
``join_filter(...)``, which turns labelled streams ``[a]`` and ``[b]`` into
``[out]``. Clip ``b`` starts ``offset`` seconds into ``a``'s timeline and the
two overlap for ``duration`` seconds, so the joined stream has
``offset * fps + len(b)`` frames (a cut has no overlap).

Both inputs are first brought to one working format: constant ``fps``,
``width`` x ``height``, square pixels, yuv444p, timestamps from zero. xfade
only works on unsubsampled formats, so converting once here (instead of letting
ffmpeg auto-insert conversions around every join) keeps chroma from being
resampled at each join of a long timeline. ``[out]`` stays in that working
format; the encoder side converts to yuv420p once with ``TO_OUTPUT``
(``render_join`` shows how).

Most transitions are ffmpeg ``xfade`` built-ins. The rest are ``xfade``
``custom`` expressions (evaluated per pixel, so they cost more than built-ins
on large frames; their windows are short) or a built-in with a filter applied
over the transition window only (``enable``), such as the blur of a whip pan.
Custom expressions see yuv444p in TV range: black is Y=16, white Y=235, and
neutral chroma is 128. ``P`` runs from 1 (all ``a``) to 0 (all ``b``).

Direction names follow the motion on screen: ``wipe_left``/``slide_left``/
``push_left`` move towards the left, so ``b`` comes in from the right edge;
``*_up`` moves upwards, so ``b`` comes in from the bottom. ``slide_*`` is
``b`` sliding in over a still ``a`` (xfade ``cover*``); ``push_*`` moves both
(xfade ``slide*``), as editors such as Premiere name them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from workers.assembly.ffmpeg import demuxer_name, input_args, run_ffmpeg
from workers.assembly.stills import X264_ARGS
from workers.probe import ProbeError, StreamInfo, probe_media

Kind = Literal["cut", "xfade", "whip", "glitch"]

MAX_DURATION = 10.0  # seconds; longer overlaps are a scene, not a transition

# Chroma is converted by point sampling both ways: 4:2:0 -> 4:4:4 repeats each
# chroma sample and 4:4:4 -> 4:2:0 takes one back, so frames outside the
# transition windows come out bit-exact however many joins they pass through
# (interpolating filters would soften colour edges a little at every join).
TO_WORKING = "scale=flags=neighbor,format=yuv444p"
TO_OUTPUT = "scale=flags=neighbor,format=yuv420p"

_WHITE = "if(eq(PLANE,0),235,128)"
_BLACK = "if(eq(PLANE,0),16,128)"
_Q = "(1-P)"  # progress 0 -> 1 through the window


# Expressions never use st()/ld(): xfade evaluates slices on several threads
# that share one expression's variable store, so stored values would race
# (speckled frames). Repeated sub-expressions are spelled out instead.


def _frac(e: str) -> str:
    return f"(({e})-floor({e}))"


def _hash(e: str) -> str:
    # The classic shader hash: a stable pseudo-random number in [0, 1).
    return _frac(f"sin({e})*43758.5453")


def _sample(clip: str, x: str, y: str) -> str:
    # Pixel of clip "a" or "b" at (x, y) on the plane being computed.
    return (
        f"if(eq(PLANE,0),{clip}0({x},{y}),"
        f"if(eq(PLANE,1),{clip}1({x},{y}),{clip}2({x},{y})))"
    )


def _dip(colour: str) -> str:
    # a fades out over the first 45%, the colour holds for 10%, b fades in over
    # the last 45%: the middle of the window is the pure colour. (xfade's own
    # fadeblack/fadewhite never reach the full colour mid-way.)
    wa = f"clip(1-{_Q}/0.45,0,1)"
    wb = f"clip(({_Q}-0.55)/0.45,0,1)"
    return f"A*{wa}+B*{wb}+{colour}*(1-{wa}-{wb})"


def _zoom(clip: str, scale: str) -> str:
    # ``clip`` magnified ``scale`` times about the frame's centre.
    return _sample(clip, f"W/2+(X-W/2)/({scale})", f"H/2+(Y-H/2)/({scale})")


# A short white flash over a quick dissolve: full white for the middle sixth of
# the window, none in its first and last quarters.
_FLASH_W = "clip(1.5-abs(P-0.5)*6,0,1)"
_FLASH = f"(A*P+B*(1-P))*(1-{_FLASH_W})+{_WHITE}*{_FLASH_W}"

# A wipe through a luma matte, top-left first: a diagonal gradient roughened by
# blocky noise (blocks, not pixels, so the three 4:4:4 planes see the same
# matte), with a soft edge of 15% of the matte's range.
_NOISE = _hash("floor(X*16/W)*12.9898+floor(Y*9/H)*78.233")
_MATTE = f"(0.425*(X/W+Y/H)+0.15*{_NOISE})"
_LUMA_B = f"clip(({_Q}*1.15-{_MATTE})/0.15,0,1)"
_LUMA_WIPE = f"A*(1-{_LUMA_B})+B*{_LUMA_B}"

# xfade's own zoomin narrows to a single pixel of a mid-way, so both zooms are
# custom: a grows to 1.5x while it fades out (zoom_in), or b starts at 1.5x and
# settles to its size while it fades in (zoom_out).
_ZOOM_IN = f"{_zoom('a', f'1+0.5*{_Q}')}*P+B*(1-P)"
_ZOOM_OUT = f"A*P+{_zoom('b', '1+0.5*P')}*(1-P)"

# Sixteen horizontal bands flip from a to b in a random order that is
# reshuffled ten times over the window, so bands flicker between the clips.
_GLITCH = f"if(lt({_hash(f'(floor(Y*16/H)+floor({_Q}*10)*31)*12.9898+7.13')},{_Q}),B,A)"


@dataclass(frozen=True)
class Transition:
    """One way of joining two clips.

    ``kind`` says how the fragment is built: "cut" (trim + concat), "xfade"
    (one xfade, built-in or ``custom`` with ``expr``), "whip" (xfade plus a
    horizontal motion blur over the window) or "glitch" (xfade plus an
    RGB-split chroma shift over the window).
    """

    name: str
    kind: Kind
    xfade: str = ""  # xfade transition name ("custom" with expr)
    expr: str = ""
    description: str = ""


def _x(name: str, xfade: str, description: str) -> Transition:
    return Transition(name, "xfade", xfade, "", description)


def _c(name: str, expr: str, description: str) -> Transition:
    return Transition(name, "xfade", "custom", expr, description)


_CATALOGUE = [
    Transition("cut", "cut", description="Hard cut, no overlap."),
    _x("crossfade", "fade", "Linear cross-dissolve."),
    _x("dissolve", "dissolve", "Pixel-noise dissolve."),
    _c("dip_to_black", _dip(_BLACK), "Fade out to black, hold, fade in."),
    _c("dip_to_white", _dip(_WHITE), "Fade out to white, hold, fade in."),
    _c("flash", _FLASH, "Quick dissolve under a brief white flash."),
    _x("wipe_left", "wipeleft", "Hard edge moving left; b from the right."),
    _x("wipe_right", "wiperight", "Hard edge moving right; b from the left."),
    _x("wipe_up", "wipeup", "Hard edge moving up; b from the bottom."),
    _x("wipe_down", "wipedown", "Hard edge moving down; b from the top."),
    _x("smooth_left", "smoothleft", "Soft-edged wipe moving left."),
    _x("smooth_right", "smoothright", "Soft-edged wipe moving right."),
    _x("slide_left", "coverleft", "b slides in from the right over a."),
    _x("slide_right", "coverright", "b slides in from the left over a."),
    _x("slide_up", "coverup", "b slides in from the bottom over a."),
    _x("slide_down", "coverdown", "b slides in from the top over a."),
    _x("push_left", "slideleft", "b pushes a out to the left."),
    _x("push_right", "slideright", "b pushes a out to the right."),
    _x("push_up", "slideup", "b pushes a out upwards."),
    _x("push_down", "slidedown", "b pushes a out downwards."),
    _c("zoom_in", _ZOOM_IN, "a grows to 1.5x as it fades out."),
    _c("zoom_out", _ZOOM_OUT, "b settles from 1.5x to full size as it fades in."),
    _x("circle_open", "circleopen", "b grows from a circle in the centre."),
    _x("circle_close", "circleclose", "a shrinks to a circle in the centre."),
    _x("barn_door_open", "vertopen", "b opens from the vertical centre line."),
    _x("radial", "radial", "Clock-hand sweep."),
    _x("pixelize", "pixelize", "Blocks grow, swap clips, shrink."),
    _x("blur", "hblur", "Horizontal blur dissolve."),
    _c("luma_wipe", _LUMA_WIPE, "Soft wipe through a diagonal noisy luma matte."),
    Transition(
        "glitch", "glitch", "custom", _GLITCH, "Bands flicker between clips, RGB split."
    ),
    Transition("whip_pan", "whip", "slideleft", "", "Fast push left with motion blur."),
    Transition(
        "whip_pan_right",
        "whip",
        "slideright",
        "",
        "Fast push right with motion blur.",
    ),
]

TRANSITIONS: dict[str, Transition] = {t.name: t for t in _CATALOGUE}

_IN_LABEL = re.compile(r"[A-Za-z0-9_:.]+")
_OUT_LABEL = re.compile(r"[A-Za-z0-9_]+")


def get_transition(name: str) -> Transition:
    """The catalogue entry for ``name``; ValueError naming the choices."""
    try:
        return TRANSITIONS[name]
    except KeyError:
        choices = ", ".join(TRANSITIONS)
        raise ValueError(
            f"Unknown transition {name!r}; choose one of: {choices}."
        ) from None


def _check_duration(t: Transition, duration: float, fps: int) -> None:
    if t.kind == "cut":
        if duration != 0:
            raise ValueError("A cut has no overlap: its duration must be 0.")
        return
    if not duration * fps >= 1:
        raise ValueError(
            f"Transition {t.name!r} needs a duration of at least one frame "
            f"({1 / fps:.3f} s at {fps} fps), got {duration!r}."
        )
    if duration > MAX_DURATION:
        raise ValueError(
            f"Transition {t.name!r} lasts at most {MAX_DURATION:g} s, got {duration:g}."
        )


def _normalise(label: str, tag: str, fps: int, width: int, height: int) -> str:
    # Scale-to-cover then crop: a mismatched clip is never stretched.
    return (
        f"[{label}]setpts=PTS-STARTPTS,fps={fps},"
        f"scale={width}:{height}:force_original_aspect_ratio=increase,"
        f"crop={width}:{height},setsar=1,{TO_WORKING},settb=AVTB[{tag}]"
    )


def join_filter(
    transition: str,
    duration: float,
    offset: float,
    a: str,
    b: str,
    out: str,
    fps: int,
    width: int,
    height: int,
) -> str:
    """Filtergraph fragment joining ``[a]`` and ``[b]`` into ``[out]``.

    ``b`` starts ``offset`` seconds into ``a`` and overlaps it for ``duration``
    seconds (0 for "cut", whose ``a`` is trimmed at ``offset``). Frames of
    ``a`` after ``offset + duration`` are dropped. ``[out]`` is yuv444p at
    ``fps``, ``width`` x ``height``; helper labels are ``out`` plus a suffix.
    """
    t = get_transition(transition)
    if fps < 1:
        raise ValueError("The frame rate must be positive.")
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError("Width and height must be even numbers (yuv420p).")
    _check_duration(t, duration, fps)
    if not offset >= 0:
        raise ValueError(f"The offset must be 0 or more seconds, got {offset!r}.")
    for label in (a, b):
        if not _IN_LABEL.fullmatch(label):
            raise ValueError(f"Input label {label!r} is not a plain stream label.")
    if not _OUT_LABEL.fullmatch(out):
        raise ValueError(f"Output label {out!r} must be letters, digits or _.")

    na, nb = f"{out}_na", f"{out}_nb"
    parts = [
        _normalise(a, na, fps, width, height),
        _normalise(b, nb, fps, width, height),
    ]
    if t.kind == "cut":
        parts.append(f"[{na}]trim=end={offset:.6f},setpts=PTS-STARTPTS[{out}_ta]")
        parts.append(f"[{out}_ta][{nb}]concat=n=2:v=1:a=0[{out}]")
        return ";".join(parts)

    xfade = f"xfade=transition={t.xfade}:duration={duration:.6f}:offset={offset:.6f}"
    if t.expr:
        xfade += f":expr='{t.expr}'"
    # The window in the joined stream's own seconds, half a frame inside each
    # end so rounding of frame times never lets the effect touch a frame that
    # is all a or all b.
    half = 0.5 / fps
    enable = f"enable='between(t,{offset + half:.6f},{offset + duration - half:.6f})'"
    if t.kind == "xfade":
        parts.append(f"[{na}][{nb}]{xfade}[{out}]")
    elif t.kind == "whip":
        # Horizontal-only blur, scaled to the frame so it reads the same at
        # any resolution.
        sigma = max(2.0, width / 40)
        parts.append(
            f"[{na}][{nb}]{xfade},gblur=sigma={sigma:.2f}:sigmaV=0:{enable}[{out}]"
        )
    else:  # glitch
        # Cb and Cr pushed opposite ways (and wrapped) give the red/blue
        # fringes of an RGB split without leaving YUV.
        shift = max(2, width // 40)
        parts.append(
            f"[{na}][{nb}]{xfade},chromashift=cbh={shift}:crh={-shift}"
            f":cbv={shift // 2}:edge=wrap:{enable}[{out}]"
        )
    return ";".join(parts)


def _video(path: Path) -> tuple[StreamInfo, str | None]:
    if not path.is_file():
        raise ValueError(f"Clip {path.name} does not exist.")
    try:
        info = probe_media(path)
    except ProbeError as exc:
        raise ValueError(f"Clip {path.name} cannot be read: {exc}") from exc
    streams = info.of_kind("video")
    if not streams:
        raise ValueError(f"Clip {path.name} has no video stream.")
    fmt = demuxer_name(info.format_name)
    if fmt is None:
        raise ValueError(f"Clip {path.name} is not a plain media file.")
    return streams[0], fmt


def _seconds(stream: StreamInfo, fps: int) -> float:
    if stream.frames:
        return stream.frames / fps
    return stream.duration or 0.0


def render_join(
    clip_a: Path,
    clip_b: Path,
    out: Path,
    *,
    transition: str,
    duration: float,
    fps: int,
) -> None:
    """Join two clips with ``transition`` overlapping their last/first
    ``duration`` seconds, as H.264 yuv420p at ``fps`` in ``a``'s size.

    For tests and previews; the result has len(a) + len(b) - overlap frames.
    """
    clip_a, clip_b, out = Path(clip_a), Path(clip_b), Path(out)
    t = get_transition(transition)
    if fps < 1:
        raise ValueError("The frame rate must be positive.")
    _check_duration(t, duration, fps)
    sa, fmt_a = _video(clip_a)
    sb, fmt_b = _video(clip_b)
    len_a, len_b = _seconds(sa, fps), _seconds(sb, fps)
    if duration > min(len_a, len_b) + 0.5 / fps:
        raise ValueError(
            f"A {duration:g} s transition needs both clips at least that long "
            f"(they last {len_a:.3f} s and {len_b:.3f} s)."
        )
    width, height = sa.width or 0, sa.height or 0
    graph = join_filter(
        t.name, duration, max(0.0, len_a - duration), "0:v:0", "1:v:0", "j",
        fps, width, height,
    )  # fmt: skip
    args = [
        *input_args(clip_a, fmt=fmt_a),
        *input_args(clip_b, fmt=fmt_b),
        "-filter_complex", f"{graph};[j]{TO_OUTPUT}[v]",
        "-map", "[v]",
        "-r", str(fps),
        *X264_ARGS,
        "-an", "-sn", "-dn",
        "-map_metadata", "-1",
    ]  # fmt: skip
    run_ffmpeg(args, output=out, total_seconds=len_a + len_b - duration)
