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
(the renderer shows how).

Most transitions are ffmpeg ``xfade`` built-ins, or a built-in with a filter
applied over the transition window only (``enable``), such as the blur of a
whip pan. The rest are "blend" kinds drawn by the renderer itself
(``workers.assembly.blends``), which is much cheaper than a filtergraph per
window (see there).

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

from workers.assembly.sources import probe_video
from workers.probe import StreamInfo

Kind = Literal["cut", "xfade", "whip", "blend"]

MAX_DURATION = 10.0  # seconds; longer overlaps are a scene, not a transition

# Chroma is converted by point sampling both ways: 4:2:0 -> 4:4:4 repeats each
# chroma sample and 4:4:4 -> 4:2:0 takes one back, so frames outside the
# transition windows come out bit-exact however many joins they pass through
# (interpolating filters would soften colour edges a little at every join).
TO_WORKING = "scale=flags=neighbor,format=yuv444p"
TO_OUTPUT = "scale=flags=neighbor,format=yuv420p"


@dataclass(frozen=True)
class Transition:
    """One way of joining two clips.

    ``kind`` says how it is made: "cut" (trim + concat), "xfade" (one xfade
    built-in), "whip" (xfade plus a horizontal motion blur over the window)
    or "blend" (drawn by the renderer, ``blends.BLENDS[name]``).
    """

    name: str
    kind: Kind
    xfade: str = ""  # xfade transition name
    description: str = ""


def _x(name: str, xfade: str, description: str) -> Transition:
    return Transition(name, "xfade", xfade, description)


def _b(name: str, description: str) -> Transition:
    return Transition(name, "blend", "", description)


_CATALOGUE = [
    Transition("cut", "cut", description="Hard cut, no overlap."),
    _b("crossfade", "Linear cross-dissolve."),
    _x("dissolve", "dissolve", "Pixel-noise dissolve."),
    _b("dip_to_black", "Fade out to black, hold, fade in."),
    _b("dip_to_white", "Fade out to white, hold, fade in."),
    _b("flash", "Quick dissolve under a brief white flash."),
    _b("wipe_left", "Hard edge moving left; b from the right."),
    _b("wipe_right", "Hard edge moving right; b from the left."),
    _b("wipe_up", "Hard edge moving up; b from the bottom."),
    _b("wipe_down", "Hard edge moving down; b from the top."),
    _x("smooth_left", "smoothleft", "Soft-edged wipe moving left."),
    _x("smooth_right", "smoothright", "Soft-edged wipe moving right."),
    _b("slide_left", "b slides in from the right over a."),
    _b("slide_right", "b slides in from the left over a."),
    _b("slide_up", "b slides in from the bottom over a."),
    _b("slide_down", "b slides in from the top over a."),
    _b("push_left", "b pushes a out to the left."),
    _b("push_right", "b pushes a out to the right."),
    _b("push_up", "b pushes a out upwards."),
    _b("push_down", "b pushes a out downwards."),
    _b("zoom_in", "a grows to 1.5x as it fades out."),
    _b("zoom_out", "b settles from 1.5x to full size as it fades in."),
    _b("circle_open", "b grows from a circle in the centre."),
    _b("circle_close", "a shrinks to a circle in the centre."),
    _x("barn_door_open", "vertopen", "b opens from the vertical centre line."),
    _x("radial", "radial", "Clock-hand sweep."),
    _x("pixelize", "pixelize", "Blocks grow, swap clips, shrink."),
    _x("blur", "hblur", "Horizontal blur dissolve."),
    _b("luma_wipe", "Soft wipe through a diagonal noisy luma matte."),
    _b("glitch", "Bands flicker between clips, RGB split."),
    Transition("whip_pan", "whip", "slideleft", "Fast push left with motion blur."),
    Transition(
        "whip_pan_right", "whip", "slideright", "Fast push right with motion blur."
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

    if t.kind == "blend":
        raise ValueError(
            f"Transition {t.name!r} is drawn by the renderer (blends), not a filter."
        )
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
    # The window in the joined stream's own seconds, half a frame inside each
    # end so rounding of frame times never lets the effect touch a frame that
    # is all a or all b.
    half = 0.5 / fps
    enable = f"enable='between(t,{offset + half:.6f},{offset + duration - half:.6f})'"
    if t.kind == "xfade":
        parts.append(f"[{na}][{nb}]{xfade}[{out}]")
    else:  # whip
        # Horizontal-only blur, scaled to the frame so it reads the same at
        # any resolution.
        sigma = max(2.0, width / 40)
        parts.append(
            f"[{na}][{nb}]{xfade},gblur=sigma={sigma:.2f}:sigmaV=0:{enable}[{out}]"
        )
    return ";".join(parts)


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
    sa, _ = probe_video(clip_a)
    sb, _ = probe_video(clip_b)
    len_a, len_b = _seconds(sa, fps), _seconds(sb, fps)
    if duration > min(len_a, len_b) + 0.5 / fps:
        raise ValueError(
            f"A {duration:g} s transition needs both clips at least that long "
            f"(they last {len_a:.3f} s and {len_b:.3f} s)."
        )
    # Through the renderer itself, so previews and tests see exactly what a
    # render makes (xfade joins and in-process blends alike).
    from workers.assembly.render import render_timeline
    from workers.assembly.timeline import load_timeline

    first: dict = {
        "source": {"kind": "video", "file": str(clip_a.absolute())},
        "start": 0,
        "duration": len_a,
        "transition": {"type": t.name, "duration": duration},
    }
    second = {
        "source": {"kind": "video", "file": str(clip_b.absolute())},
        "start": len_a - duration,
        "duration": len_b,
    }
    timeline = load_timeline(
        {
            "version": 1,
            "output": {"width": sa.width, "height": sa.height, "fps": fps},
            "clips": [first, second],
        }
    )
    render_timeline(timeline, out)
