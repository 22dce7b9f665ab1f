"""Transitions drawn in-process on 4:2:0 frames: crossfade, wipes, slides,
pushes, circles, dips, flash, zooms, luma wipe and glitch.

Through ffmpeg each of these meant a process per transition window, both
clips converted to 4:4:4 and back around ``xfade``, and for dips, flash,
zooms, the luma wipe and the glitch an ``xfade`` custom expression, which
ffmpeg evaluates pixel by pixel through its interpreter: about half a second
per 1080p frame. Made here with OpenCV's vectorised blends and warps and
numpy slicing, they cost a few milliseconds a frame. The rest (dissolve,
smooth wipes, barn door, radial, pixelize, blur, whip pans) stay ``xfade``
built-ins (``transitions.join_filter``).

Every function takes the two frames (flat yuv420p buffers of ``size``), the
progress ``q`` through the window (0 = all ``a``, 1 = all ``b``; the renderer
passes frame centres, (i + 0.5) / n) and writes the result into ``out``.
Colours are in TV range, as the renderer's frames are: black is Y=16, white
Y=235, neutral chroma 128.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np

Size = tuple[int, int]
Blend = Callable[[np.ndarray, np.ndarray, float, Size, np.ndarray], None]

BLACK_Y, WHITE_Y, NEUTRAL_C = 16, 235, 128


def _split(buf: np.ndarray, size: Size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w, h = size
    n = w * h
    return (
        buf[:n].reshape(h, w),
        buf[n : n * 5 // 4].reshape(h // 2, w // 2),
        buf[n * 5 // 4 :].reshape(h // 2, w // 2),
    )


def _mix3(
    a: np.ndarray,
    wa: float,
    b: np.ndarray,
    wb: float,
    colour: tuple[int, int],
    size: Size,
    out: np.ndarray,
) -> None:
    """out = a*wa + b*wb + colour*(1 - wa - wb), luma and chroma colours apart."""
    n = size[0] * size[1]
    rest = 1.0 - wa - wb
    for sl, c in ((slice(0, n), colour[0]), (slice(n, None), colour[1])):
        cv2.addWeighted(a[sl], wa, b[sl], wb, c * rest, dst=out[sl])


def _dip(colour: tuple[int, int]) -> Blend:
    def blend(
        a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
    ) -> None:
        # a fades out over the first 45 %, the colour holds for 10 %, b fades
        # in over the last 45 %: the middle of the window is the pure colour.
        wa = min(max(1 - q / 0.45, 0.0), 1.0)
        wb = min(max((q - 0.55) / 0.45, 0.0), 1.0)
        _mix3(a, wa, b, wb, colour, size, out)

    return blend


dip_to_black = _dip((BLACK_Y, NEUTRAL_C))
dip_to_white = _dip((WHITE_Y, NEUTRAL_C))


def flash(a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray) -> None:
    """A quick dissolve under a white flash: full white for the middle sixth
    of the window, none in its first and last quarters."""
    fw = min(max(1.5 - abs(q - 0.5) * 6, 0.0), 1.0)
    _mix3(a, (1 - q) * (1 - fw), b, q * (1 - fw), (WHITE_Y, NEUTRAL_C), size, out)


def _scaled(src: np.ndarray, scale: float, size: Size, out: np.ndarray) -> None:
    """``src`` magnified ``scale`` times about the frame's centre."""
    for plane, dst in zip(_split(src, size), _split(out, size), strict=True):
        h, w = plane.shape
        k = 1.0 / scale
        # Output pixel centre x + 0.5 samples the source at w/2 + (x + 0.5 - w/2)/s.
        m = np.array(
            [[k, 0.0, (w / 2) * (1 - k) + 0.5 * k - 0.5],
             [0.0, k, (h / 2) * (1 - k) + 0.5 * k - 0.5]]
        )  # fmt: skip
        cv2.warpAffine(
            plane, m, (w, h), dst=dst,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip


def zoom_in(
    a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
) -> None:
    """a grows to 1.5x while it fades into b."""
    _scaled(a, 1 + 0.5 * q, size, out)
    cv2.addWeighted(out, 1 - q, b, q, 0.0, dst=out)


def zoom_out(
    a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
) -> None:
    """b settles from 1.5x to its size while it fades in over a."""
    _scaled(b, 1.5 - 0.5 * q, size, out)
    cv2.addWeighted(a, 1 - q, out, q, 0.0, dst=out)


@functools.lru_cache(maxsize=4)
def _luma_matte(size: Size) -> np.ndarray:
    """A diagonal gradient roughened by blocky noise (16x9 blocks, so the
    chroma planes see the same matte), for all three planes, flat."""
    w, h = size
    rng = np.random.default_rng(1337)  # fixed: the same wipe every render
    blocks = rng.random((9, 16)).astype(np.float32)

    def plane(pw: int, ph: int) -> np.ndarray:
        ys, xs = np.mgrid[0:ph, 0:pw].astype(np.float32)
        xs = (xs + 0.5) / pw
        ys = (ys + 0.5) / ph
        noise = blocks[
            np.minimum((ys * 9).astype(int), 8), np.minimum((xs * 16).astype(int), 15)
        ]
        return (0.425 * (xs + ys) + 0.15 * noise).ravel()

    half = plane(w // 2, h // 2)
    return np.concatenate([plane(w, h), half, half])


def luma_wipe(
    a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
) -> None:
    """A soft wipe through the matte, top-left first."""
    matte = _luma_matte(size)
    mask = np.clip((q * 1.15 - matte) / 0.15, 0.0, 1.0)
    fa = a.astype(np.float32)
    np.copyto(out, np.rint(fa + (b.astype(np.float32) - fa) * mask), casting="unsafe")


def _hash(x: np.ndarray) -> np.ndarray:
    # The classic shader hash: a stable pseudo-random number in [0, 1).
    v = np.sin(x) * 43758.5453
    return v - np.floor(v)


GLITCH_BANDS = 16
GLITCH_STEPS = 10  # the band order is reshuffled this many times


def glitch(a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray) -> None:
    """Sixteen horizontal bands flip from a to b in a random order that is
    reshuffled ten times over the window, with the colour channels pushed
    apart (an RGB split) while it lasts."""
    w, h = size
    step = min(int(q * GLITCH_STEPS), GLITCH_STEPS - 1)
    bands = np.arange(GLITCH_BANDS, dtype=np.float64)
    takes_b = _hash((bands + step * 31) * 12.9898 + 7.13) < q
    for pa, pb, po in zip(
        _split(a, size), _split(b, size), _split(out, size), strict=True
    ):
        ph = po.shape[0]
        rows = np.minimum((np.arange(ph) * GLITCH_BANDS) // ph, GLITCH_BANDS - 1)
        pick = takes_b[rows][:, None]
        np.copyto(po, np.where(pick, pb, pa))
    _, u, v = _split(out, size)
    shift = max(1, w // 80)  # in chroma pixels: w / 40 luma pixels
    u[:] = np.roll(u, (shift // 2, shift), axis=(0, 1))
    v[:] = np.roll(v, -shift, axis=1)


def crossfade(
    a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
) -> None:
    """Linear cross-dissolve."""
    cv2.addWeighted(a, 1 - q, b, q, 0.0, dst=out)


# Geometric transitions: each plane is cut at the same place (chroma at half
# the luma's coordinates), in whole pixels of that plane, as xfade does.


def _planes3(
    a: np.ndarray, b: np.ndarray, out: np.ndarray, size: Size
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return list(zip(_split(a, size), _split(b, size), _split(out, size), strict=True))


def _wipe(direction: str) -> Blend:
    """A hard edge moving towards ``direction``; b is uncovered behind it."""

    def blend(
        a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
    ) -> None:
        for pa, pb, po in _planes3(a, b, out, size):
            h, w = po.shape
            if direction in ("left", "right"):
                edge = (
                    int(round(w * (1 - q)))
                    if direction == "left"
                    else int(round(w * q))
                )
                first, second = (pa, pb) if direction == "left" else (pb, pa)
                po[:, :edge] = first[:, :edge]
                po[:, edge:] = second[:, edge:]
            else:
                edge = (
                    int(round(h * (1 - q))) if direction == "up" else int(round(h * q))
                )
                first, second = (pa, pb) if direction == "up" else (pb, pa)
                po[:edge] = first[:edge]
                po[edge:] = second[edge:]

    return blend


def _slide(direction: str, push: bool) -> Blend:
    """b slides in moving towards ``direction``, over a still a (slide) or
    pushing a out ahead of it (push)."""

    def blend(
        a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
    ) -> None:
        for pa, pb, po in _planes3(a, b, out, size):
            h, w = po.shape
            horizontal = direction in ("left", "right")
            n = w if horizontal else h
            d = int(round(n * q))  # how far b has come in
            # Move the arrays so that "towards direction" is towards index 0.
            flip = direction in ("right", "down")
            src_a, src_b, dst = pa, pb, po
            if not horizontal:
                src_a, src_b, dst = src_a.T, src_b.T, dst.T
            if flip:
                src_a, src_b, dst = src_a[:, ::-1], src_b[:, ::-1], dst[:, ::-1]
            if push:
                dst[:, : n - d] = src_a[:, d:]
            else:
                dst[:, : n - d] = src_a[:, : n - d]
            dst[:, n - d :] = src_b[:, :d]

    return blend


@functools.lru_cache(maxsize=8)
def _radius_map(w: int, h: int) -> np.ndarray:
    """Distance of each pixel centre from the frame centre, as a fraction of
    the distance to a corner."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xs + 0.5 - w / 2, ys + 0.5 - h / 2)
    return r / float(np.hypot(w / 2, h / 2))


def _circle(opening: bool) -> Blend:
    """b grows from a circle in the centre (open), or a shrinks into one
    (close); the edge is softened over 2 % of the radius."""

    def blend(
        a: np.ndarray, b: np.ndarray, q: float, size: Size, out: np.ndarray
    ) -> None:
        radius = q if opening else 1 - q
        for pa, pb, po in _planes3(a, b, out, size):
            h, w = po.shape
            inside = np.clip((radius - _radius_map(w, h)) / 0.02 + 0.5, 0.0, 1.0)
            centre, rest = (pb, pa) if opening else (pa, pb)
            fc, fr = centre.astype(np.float32), rest.astype(np.float32)
            np.copyto(po, np.rint(fr + (fc - fr) * inside), casting="unsafe")

    return blend


BLENDS: dict[str, Blend] = {
    "crossfade": crossfade,
    "wipe_left": _wipe("left"),
    "wipe_right": _wipe("right"),
    "wipe_up": _wipe("up"),
    "wipe_down": _wipe("down"),
    "slide_left": _slide("left", push=False),
    "slide_right": _slide("right", push=False),
    "slide_up": _slide("up", push=False),
    "slide_down": _slide("down", push=False),
    "push_left": _slide("left", push=True),
    "push_right": _slide("right", push=True),
    "push_up": _slide("up", push=True),
    "push_down": _slide("down", push=True),
    "circle_open": _circle(opening=True),
    "circle_close": _circle(opening=False),
    "dip_to_black": dip_to_black,
    "dip_to_white": dip_to_white,
    "flash": flash,
    "zoom_in": zoom_in,
    "zoom_out": zoom_out,
    "luma_wipe": luma_wipe,
    "glitch": glitch,
}
