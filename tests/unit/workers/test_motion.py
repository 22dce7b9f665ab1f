"""Camera moves: views, named moves, and a warp that glides by sub-pixel steps."""

from __future__ import annotations

import numpy as np
import pytest

from workers.assembly.motion import (
    MAX_PAN,
    MIN_PAN,
    MOVES,
    PUSH,
    ZOOM,
    Planes,
    View,
    cover_scale,
    eased,
    move_views,
    named_move,
    prepared_size,
    view_at,
    view_matrix,
)

FRAME = (320, 180)


def _draw(planes: Planes, view: View, frame: tuple[int, int] = FRAME) -> np.ndarray:
    w, h = frame
    out = np.empty(w * h * 3 // 2, np.uint8)
    planes.draw(view, frame, out)
    return out[: w * h].reshape(h, w)


def test_view_matrix_at_cover_maps_frame_corners_to_the_covered_image() -> None:
    # A 640x360 image covers a 320x180 frame at half scale, centred.
    m = view_matrix(View(0.5, 0.5, 1.0), (640, 360), FRAME)
    first = m @ np.array([0.0, 0.0, 1.0])
    last = m @ np.array([319.0, 179.0, 1.0])
    # Output pixel 0 covers image pixels 0..1, so its centre is at 0.5.
    assert first == pytest.approx([0.5, 0.5])
    assert last == pytest.approx([638.5, 358.5])


def test_view_is_clamped_inside_the_image() -> None:
    # Centring on the very corner still shows only image, never a border.
    m = view_matrix(View(0.0, 0.0, 2.0), (640, 360), FRAME)
    corner = m @ np.array([-0.5, -0.5, 1.0])  # outer edge of the first pixel
    assert corner == pytest.approx([-0.5, -0.5])


@pytest.mark.parametrize("move", MOVES)
def test_every_named_move_stays_inside_the_image(move: str) -> None:
    image = (1200, 800)
    start, end = named_move(move, image, FRAME, focus=(0.2, 0.8))
    for view in (start, end, view_at(start, end, 0.5)):
        m = view_matrix(view, image, FRAME)
        for x, y in ((-0.5, -0.5), (FRAME[0] - 0.5, FRAME[1] - 0.5)):
            sx, sy = m @ np.array([x, y, 1.0])
            assert -0.5 - 1e-9 <= sx <= image[0] - 0.5 + 1e-9
            assert -0.5 - 1e-9 <= sy <= image[1] - 0.5 + 1e-9


def test_zooms_and_pushes_travel_their_stated_amounts() -> None:
    image = (1200, 800)
    a, b = named_move("zoom_in", image, FRAME, focus=(0.4, 0.3))
    assert (a.zoom, b.zoom) == (1.0, ZOOM)
    assert (b.x, b.y) == (0.4, 0.3)
    a, b = named_move("push_out", image, FRAME, focus=(0.4, 0.3))
    assert a == View(0.4, 0.3, PUSH) and b == View(0.5, 0.5, 1.0)
    a, b = named_move("static", image, FRAME)
    assert a == b


def test_pans_travel_between_min_and_max_of_the_frame() -> None:
    # A square image in a 16:9 frame has no spare width: the pan zooms in to
    # make at least MIN_PAN of travel.
    for image in ((900, 900), (4000, 900)):
        a, b = named_move("pan_right", image, FRAME)
        assert b.x > a.x
        px_per_fraction = image[0] * cover_scale(image, FRAME) * a.zoom
        travel = (b.x - a.x) * px_per_fraction
        assert MIN_PAN * FRAME[0] - 1e-6 <= travel <= MAX_PAN * FRAME[0] + 1e-6
    a, b = named_move("pan_up", (900, 1600), FRAME)
    assert b.y < a.y and a.x == b.x


def test_zoom_is_interpolated_geometrically() -> None:
    mid = view_at(View(0.5, 0.5, 1.0), View(0.5, 0.5, 4.0), 0.5)
    assert mid.zoom == pytest.approx(2.0)


def test_pushes_ease_the_others_glide_evenly() -> None:
    assert eased("pan_left", 0.25) == 0.25
    assert eased("push_in", 0.1) < 0.1 and eased("push_in", 0.9) > 0.9
    assert eased("push_in", 0.5) == pytest.approx(0.5)


def test_prepared_size_never_upscales_and_is_even() -> None:
    assert prepared_size((4000, 3000), (1920, 1080), 1.1) == (2112, 1584)
    assert prepared_size((1001, 501), (1920, 1080), 1.5) == (1000, 500)


def test_custom_views_must_not_zoom_out_past_cover() -> None:
    with pytest.raises(ValueError, match="zoom"):
        move_views((View(0.5, 0.5, 0.5), View()), (100, 100), FRAME)
    with pytest.raises(ValueError, match="Unknown move"):
        named_move("spin", (100, 100), FRAME)


def _blob_planes(width: int, height: int, x: float, y: float) -> Planes:
    ys, xs = np.indices((height, width), dtype=np.float64)
    blob = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 6.0**2))
    luma = np.round(16 + 200 * blob).astype(np.uint8)
    chroma = np.full((height // 2, width // 2), 128, np.uint8)
    return Planes(luma, chroma, chroma.copy())


def _centroid(picture: np.ndarray) -> float:
    weight = np.clip(picture.astype(np.float64) - 16, 0, None)
    xs = np.indices(picture.shape)[1]
    return float((xs * weight).sum() / weight.sum())


def test_a_slow_pan_moves_by_even_sub_pixel_steps() -> None:
    """Consecutive frames of a pan move by the same fraction of a pixel.

    A window rounded to whole pixels (zoompan, crop) moves in steps of 0 and
    1 px; here every step is the travel divided by the frame count.
    """
    planes = _blob_planes(960, 270, 480.0, 135.0)
    frames = 24
    start, end = View(0.45, 0.5, 1.0), View(0.47, 0.5, 1.0)
    image = planes.size
    expected = (end.x - start.x) * image[0] * cover_scale(image, FRAME) / (frames - 1)
    assert 0.1 < expected < 0.9  # a genuinely sub-pixel step
    positions = [
        _centroid(_draw(planes, view_at(start, end, i / (frames - 1))))
        for i in range(frames)
    ]
    steps = np.diff(positions)
    # The picture moves left as the camera moves right, by even steps.
    assert np.median(steps) == pytest.approx(-expected, abs=0.01)
    # Rounding to 8 bits twice (resize, then shift) leaves a few hundredths.
    assert np.max(np.abs(steps + expected)) < 0.1


def test_chroma_follows_luma() -> None:
    # A mark in all three planes stays aligned after a zoomed, shifted warp.
    w, h = 640, 360
    y = np.zeros((h, w), np.uint8)
    u = np.zeros((h // 2, w // 2), np.uint8)
    y[100:140, 300:340] = 255
    u[50:70, 150:170] = 255
    planes = Planes(y, u, u.copy())
    out = np.empty(FRAME[0] * FRAME[1] * 3 // 2, np.uint8)
    planes.draw(View(0.45, 0.35, 1.7), FRAME, out)
    oy = out[: FRAME[0] * FRAME[1]].reshape(FRAME[1], FRAME[0]).astype(float)
    n = FRAME[0] * FRAME[1]
    ou = out[n : n * 5 // 4].reshape(FRAME[1] // 2, FRAME[0] // 2).astype(float)

    def centre(a: np.ndarray) -> np.ndarray:
        ys, xs = np.indices(a.shape)
        return np.array([(xs * a).sum(), (ys * a).sum()]) / a.sum()

    assert centre(ou) * 2 + 0.5 == pytest.approx(centre(oy) + 0.5, abs=0.6)
