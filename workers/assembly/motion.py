"""Camera moves over a still: views, named moves and the per-frame warp.

A *view* says what part of an image fills the frame: its centre (x, y as
fractions of the image) and a zoom, where zoom 1 is the image just covering the
frame (scaled until both sides fill it, never stretched). A move is a pair of
views, from and to; every frame in between is an interpolated view, clamped so
the frame never shows anything beyond the image.

Each frame is drawn from the prepared image with a resize by the view's exact
scale and a sub-pixel shift (``resample``, bilinear), so the picture glides by
fractions of a pixel per frame. ffmpeg's ``zoompan`` and ``crop`` round the
window to whole pixels, which is the one-pixel judder this avoids; its
``perspective`` filter is smooth but recomputes a per-pixel table every frame
and runs at about half the speed of the encoder at 1080p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MOVES = (
    "zoom_in",
    "zoom_out",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
    "push_in",
    "push_out",
    "static",
)

ZOOM = 1.10  # how far zoom_in/zoom_out travel
PUSH = 1.25  # push_in/push_out: a bigger, eased move towards the focus
MIN_PAN = 0.10  # a pan travels at least this fraction of the frame...
MAX_PAN = 0.20  # ...and at most this, so panoramas do not whip past

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class View:
    """Centre of the frame as fractions of the image, and zoom (>= 1 covers)."""

    x: float = 0.5
    y: float = 0.5
    zoom: float = 1.0


def cover_scale(image: Size, frame: Size) -> float:
    """Output pixels per image pixel at zoom 1: the image just covers the frame."""
    return max(frame[0] / image[0], frame[1] / image[1])


def _centred_pair(focus: float, travel: float, half: float) -> tuple[float, float]:
    """Start and end centres ``travel`` apart around ``focus``, kept in the
    range where a window of half-size ``half`` stays inside [0, 1]."""
    lo, hi = half, 1.0 - half
    a, b = focus - travel / 2, focus + travel / 2
    if a < lo:
        a, b = lo, lo + travel
    if b > hi:
        a, b = hi - travel, hi
    return max(a, lo), min(b, hi)


def named_move(
    move: str, image: Size, frame: Size, focus: tuple[float, float] = (0.5, 0.5)
) -> tuple[View, View]:
    """The (from, to) views of a named move for an image of size ``image``.

    Zooms and pushes close in on ``focus``; pans travel 10-20 % of the frame
    across the spare image beyond it, zooming in just enough when there is
    too little, and pass through ``focus`` half-way.
    """
    if move not in MOVES:
        raise ValueError(f"Unknown move {move!r}; choose one of: {', '.join(MOVES)}.")
    fx, fy = (min(max(float(f), 0.0), 1.0) for f in focus)
    if move == "static":
        view = View(fx, fy, 1.0)
        return view, view
    if move in ("zoom_in", "zoom_out", "push_in", "push_out"):
        far = ZOOM if move.startswith("zoom") else PUSH
        wide = View(fx, fy, 1.0) if move.startswith("zoom") else View(0.5, 0.5, 1.0)
        close = View(fx, fy, far)
        return (wide, close) if move.endswith("_in") else (close, wide)
    horizontal = move in ("pan_left", "pan_right")
    frame_len = frame[0] if horizontal else frame[1]
    cover = cover_scale(image, frame)
    image_len = (image[0] if horizontal else image[1]) * cover  # output px at zoom 1
    zoom = max(1.0, (1 + MIN_PAN) * frame_len / image_len)
    spare = image_len * zoom - frame_len
    travel = min(spare, MAX_PAN * frame_len) / (image_len * zoom)  # as a fraction
    half = frame_len / (2 * image_len * zoom)
    forward = move in ("pan_right", "pan_down")  # the camera moves towards +x/+y
    a, b = _centred_pair(fx if horizontal else fy, travel, half)
    start, end = (a, b) if forward else (b, a)
    if horizontal:
        return View(start, fy, zoom), View(end, fy, zoom)
    return View(fx, start, zoom), View(fx, end, zoom)


def eased(move: str | None, p: float) -> float:
    """Progress through a move: pushes ease in and out, the rest glide evenly."""
    if move in ("push_in", "push_out"):
        return p * p * (3 - 2 * p)
    return p


def view_at(start: View, end: View, p: float) -> View:
    """The view ``p`` (0..1) of the way from ``start`` to ``end``.

    Zoom is interpolated geometrically, so the picture grows at an even rate.
    """
    zoom = start.zoom * (end.zoom / start.zoom) ** p
    return View(start.x + (end.x - start.x) * p, start.y + (end.y - start.y) * p, zoom)


def frame_view(
    start: View, end: View, move: str | None, index: int, frames: int
) -> View:
    """The view of frame ``index`` of ``frames`` through a move: the first
    frame shows ``start``, the last ``end``."""
    p = index / (frames - 1) if frames > 1 else 0.0
    return view_at(start, end, eased(move, p))


def view_matrix(view: View, image: Size, frame: Size) -> np.ndarray:
    """2x3 affine map from output pixel centres to image coordinates.

    For ``cv2.warpAffine`` with ``WARP_INVERSE_MAP``. The window is clamped to
    the image, so a view near an edge shows the edge instead of a border.
    """
    iw, ih = image
    fw, fh = frame
    s = cover_scale(image, frame) * max(view.zoom, 1.0)  # output px per image px
    hw, hh = fw / (2 * s), fh / (2 * s)
    cx = min(max(view.x * iw, hw), iw - hw)
    cy = min(max(view.y * ih, hh), ih - hh)
    k = 1.0 / s
    # Pixel centres: output x + 0.5 sits (x + 0.5 - fw/2) / s image px from the
    # centre; image pixel i covers [i, i + 1), so its centre is i + 0.5.
    return np.array(
        [
            [k, 0.0, cx + (0.5 - fw / 2) * k - 0.5],
            [0.0, k, cy + (0.5 - fh / 2) * k - 0.5],
        ],
        dtype=np.float64,
    )


def chroma_matrix(luma: np.ndarray) -> np.ndarray:
    """The luma map for half-size chroma planes (4:2:0, sample centres)."""
    m = luma.copy()
    a = luma[0, 0]
    d = luma[1, 1]
    # Chroma sample j sits at luma coordinate 2j + 0.5 in both directions.
    m[0, 2] = (0.5 * a + luma[0, 2] - 0.5) / 2
    m[1, 2] = (0.5 * d + luma[1, 2] - 0.5) / 2
    return m


def prepared_size(
    image: Size, frame: Size, max_zoom: float, *, margin: float = 1.0
) -> Size:
    """Size to scale an image to once before a move: just enough pixels for
    the closest view (never more than the image has), even for 4:2:0."""
    need = cover_scale(image, frame) * max(max_zoom, 1.0) * margin
    r = min(1.0, need)
    w = max(2, int(round(image[0] * r / 2)) * 2)
    h = max(2, int(round(image[1] * r / 2)) * 2)
    return w, h


class Planes:
    """A 4:2:0 image as three planes, and the warp that draws one frame of it."""

    def __init__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        if y.shape[0] != 2 * u.shape[0] or y.shape[1] != 2 * u.shape[1]:
            raise ValueError("chroma planes must be half the luma size")
        self.y, self.u, self.v = y, u, v

    @property
    def size(self) -> Size:
        return self.y.shape[1], self.y.shape[0]

    @classmethod
    def from_yuv420p(cls, data: bytes | np.ndarray, size: Size) -> Planes:
        w, h = size
        buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
        if buf.size != w * h * 3 // 2:
            raise ValueError(
                f"expected {w * h * 3 // 2} bytes of yuv420p, got {buf.size}"
            )
        y = buf[: w * h].reshape(h, w)
        u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v = buf[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        return cls(y, u, v)

    def draw(self, view: View, frame: Size, out: np.ndarray) -> None:
        """Warp the view into ``out``: a flat yuv420p buffer of ``frame`` size."""
        fw, fh = frame
        m = view_matrix(view, self.size, frame)
        mc = chroma_matrix(m)
        oy = out[: fw * fh].reshape(fh, fw)
        ou = out[fw * fh : fw * fh * 5 // 4].reshape(fh // 2, fw // 2)
        ov = out[fw * fh * 5 // 4 :].reshape(fh // 2, fw // 2)
        resample(self.y, m, oy)
        resample(self.u, mc, ou)
        resample(self.v, mc, ov)


def resample(plane: np.ndarray, m: np.ndarray, out: np.ndarray) -> None:
    """``out[y, x] = plane[m @ (x, y, 1)]`` (bilinear) for a map that only
    scales (the same in x and y) and shifts, as every camera move does.

    The same picture as ``cv2.warpAffine``, in two separable passes that cost
    a third as much: the source rows and columns the frame needs are resized
    by the exact factor (``cv2.resize`` with ``fx``/``fy`` keeps the factor
    as given rather than rounding it to whole output pixels), then shifted by
    the remaining fraction of a pixel with ``cv2.getRectSubPix``. Both are
    exact to sub-pixel accuracy; only the integer ROI origin is rounded, and
    it is taken back out of the shift.
    """
    h, w = out.shape
    k = float(m[0, 0])  # source pixels per output pixel
    bx, by = float(m[0, 2]), float(m[1, 2])
    if abs(k - 1.0) < 1e-9:
        centre = (bx + (w - 1) / 2, by + (h - 1) / 2)
        cv2.getRectSubPix(plane, (w, h), centre, patch=out)
        return
    ph, pw = plane.shape
    # Source pixels the frame samples, plus two either side for the filters.
    x0 = max(0, math.floor(bx) - 2)
    y0 = max(0, math.floor(by) - 2)
    x1 = min(pw, math.ceil(bx + k * (w - 1)) + 3)
    y1 = min(ph, math.ceil(by + k * (h - 1)) + 3)
    scaled = cv2.resize(
        plane[y0:y1, x0:x1],
        (0, 0),
        fx=1.0 / k,
        fy=1.0 / k,
        interpolation=cv2.INTER_LINEAR,
    )
    # resize maps its output u to ROI coordinate (u + 0.5) * k - 0.5, so the
    # output pixel x sits at u = x + t in the resized ROI.
    tx = (bx - x0 + 0.5) / k - 0.5
    ty = (by - y0 + 0.5) / k - 0.5
    cv2.getRectSubPix(scaled, (w, h), (tx + (w - 1) / 2, ty + (h - 1) / 2), patch=out)


MAX_STRENGTH = 2.0


def scaled_move(start: View, end: View, strength: float) -> tuple[View, View]:
    """A move travelling ``strength`` times as far: pans about their middle,
    zooms from their wider view (so a zoom in still starts on the whole
    picture). 0 holds still, 1 is the move itself."""
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ValueError(f"a move's strength must be 0..{MAX_STRENGTH:g}")
    mx, my = (start.x + end.x) / 2, (start.y + end.y) / 2
    low = min(start.zoom, end.zoom)

    def scale(v: View) -> View:
        return View(
            mx + (v.x - mx) * strength,
            my + (v.y - my) * strength,
            low + (v.zoom - low) * strength,
        )

    return scale(start), scale(end)


def move_views(
    move: str | tuple[View, View] | None,
    image: Size,
    frame: Size,
    focus: tuple[float, float] = (0.5, 0.5),
    strength: float = 1.0,
) -> tuple[View, View]:
    """(from, to) for a named move (travelling ``strength`` times its usual
    distance), an explicit pair, or no move (static)."""
    if move is None:
        return named_move("static", image, frame, focus)
    if isinstance(move, str):
        views = named_move(move, image, frame, focus)
        return views if strength == 1.0 else scaled_move(*views, strength)
    start, end = move
    for v in (start, end):
        if not (math.isfinite(v.zoom) and v.zoom >= 1.0):
            raise ValueError(f"a view's zoom must be 1 or more, got {v.zoom!r}")
    return start, end
