"""Still sources: decoded once, oriented, covered (never stretched), moved."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from workers.assembly.motion import MOVES, move_views
from workers.assembly.sources import StillSource
from workers.assembly.stills import inspect_image

W, H = 320, 180


def _frames(path, frames: int, move: str, focus=(0.5, 0.5)) -> list[np.ndarray]:
    """The luma of every frame of a still clip, as the renderer draws them."""
    info = inspect_image(path)
    views = move_views(move, (info.width, info.height), (W, H), focus)
    source = StillSource.for_move(path, (W, H), frames, views, move=move)
    buf = np.empty(W * H * 3 // 2, np.uint8)
    out = []
    for _ in range(frames):
        source.read_into(buf)
        out.append(buf[: W * H].reshape(H, W).astype(np.float32))
    source.close()
    return out


def _ramp(tmp_path, axis: int):
    """Dark at the left/top, bright at the right/bottom."""
    size = (640, 480)
    ramp = np.linspace(0, 255, size[axis], dtype=np.float32)
    grid = np.broadcast_to(ramp if axis == 0 else ramp[:, None], (size[1], size[0]))
    path = tmp_path / f"ramp{axis}.png"
    Image.fromarray(grid.astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("move", [m for m in MOVES if m != "static"])
def test_every_move_moves_the_picture(images, move):
    frames = _frames(images[1], 17, move)
    assert len(frames) == 17 and frames[0].shape == (H, W)
    assert np.abs(frames[0] - frames[-1]).mean() > 2.0  # the camera moved


def test_static_holds_still(images):
    frames = _frames(images[1], 5, "static")
    assert np.array_equal(frames[0], frames[-1])


@pytest.mark.parametrize(
    ("move", "axis", "brighter"),
    [
        ("pan_right", 0, True),
        ("pan_left", 0, False),
        ("pan_down", 1, True),
        ("pan_up", 1, False),
    ],
)
def test_pans_travel_the_named_way(tmp_path, move, axis, brighter):
    frames = _frames(_ramp(tmp_path, axis), 10, move)
    change = float(frames[-1].mean() - frames[0].mean())
    assert change > 5 if brighter else change < -5


@pytest.mark.parametrize("move", ["zoom_in", "zoom_out"])
def test_zooms_scale_about_ten_percent_around_the_centre(tmp_path, move):
    # A centred disc: its apparent width grows by the zoom factor.
    img = Image.new("L", (640, 360), 255)
    ImageDraw.Draw(img).ellipse((220, 80, 420, 280), fill=0)
    path = tmp_path / "disc.png"
    img.save(path)
    frames = _frames(path, 12, move)

    def disc_width(frame: np.ndarray) -> float:
        return float((frame[H // 2] < 128).sum())

    ratio = disc_width(frames[-1]) / disc_width(frames[0])
    expected = 1.1 if move == "zoom_in" else 1 / 1.1
    assert ratio == pytest.approx(expected, rel=0.03)


def test_the_image_is_cropped_to_cover_never_stretched(tmp_path):
    # A circle in a square photo must stay round in a 16:9 frame.
    img = Image.new("L", (600, 600), 255)
    ImageDraw.Draw(img).ellipse((200, 200, 400, 400), fill=0)
    path = tmp_path / "square.png"
    img.save(path)
    dark = _frames(path, 2, "static")[0] < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert width == pytest.approx(height, rel=0.05)
    assert width == pytest.approx(W / 3, rel=0.05)  # covered: 600 px -> 320 px


def test_a_bad_image_is_a_value_error_naming_it(tmp_path):
    text = tmp_path / "photo.jpg"
    text.write_text("not a photo")
    with pytest.raises(ValueError, match="photo.jpg"):
        _frames(text, 5, "zoom_in")


def test_uploads_without_an_extension_still_decode(tmp_path, images):
    blob = tmp_path / "3f2a9c"  # stored under its content hash
    blob.write_bytes(images[1].read_bytes())
    assert len(_frames(blob, 3, "zoom_out")) == 3


def test_phone_photos_are_turned_upright_by_their_exif_orientation(tmp_path):
    # Stored landscape with the dark half on top; orientation 6 means "turn 90°
    # clockwise to view", which puts the dark half on the right.
    pixels = np.full((300, 400), 255, dtype=np.uint8)
    pixels[:150] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    frame = _frames(path, 2, "static")[0]
    left, right = frame[:, : W // 2 - 10].mean(), frame[:, W // 2 + 10 :].mean()
    assert left > 200 and right < 50


def test_a_big_jpeg_is_decoded_at_a_reduced_size_and_looks_the_same(tmp_path):
    # 2560x1440 for a 320x180 frame: decoded at 1/8 size, same picture.
    ramp = np.linspace(0, 255, 2560, dtype=np.float32)
    grid = np.broadcast_to(ramp, (1440, 2560)).astype(np.uint8)
    big, png = tmp_path / "big.jpg", tmp_path / "big.png"
    Image.fromarray(grid).save(big, quality=95)
    Image.fromarray(grid).save(png)
    a, b = _frames(big, 1, "static")[0], _frames(png, 1, "static")[0]
    assert np.abs(a - b).mean() < 2.0


def test_the_crop_keeps_the_focus_point_in_the_frame(tmp_path):
    # A tall image, dark at the top and bright at the bottom, into a wide frame:
    # only a band of it fits, and the focus decides which band.
    ramp = _ramp(tmp_path, 1)
    tall = tmp_path / "tall.png"
    Image.open(ramp).resize((300, 900)).save(tall)
    means = {
        fy: float(_frames(tall, 2, "zoom_out", focus=(0.5, fy))[-1].mean())
        for fy in (0.0, 0.5, 1.0)
    }
    assert means[0.0] < means[0.5] - 40 < means[1.0] - 80
