from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from workers.assembly.stills import MOVES, render_still_clip
from workers.probe import probe_media

W, H, FPS = 320, 180, 30


def _frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.float32)
                for f in container.decode(video=0)]  # fmt: skip


def _ramp(tmp_path, axis: int):
    """Dark at the left/top, bright at the right/bottom."""
    size = (640, 480)
    ramp = np.linspace(0, 255, size[axis], dtype=np.float32)
    grid = np.broadcast_to(ramp if axis == 0 else ramp[:, None], (size[1], size[0]))
    path = tmp_path / f"ramp{axis}.png"
    Image.fromarray(grid.astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("move", MOVES)
def test_every_move_gives_exactly_n_frames_of_the_right_size(tmp_path, images, move):
    out = tmp_path / "clip.mp4"
    render_still_clip(images[1], out, width=W, height=H, fps=FPS, frames=17, move=move)
    frames = _frames(out)
    assert len(frames) == 17
    assert frames[0].shape == (H, W)
    assert np.abs(frames[0] - frames[-1]).mean() > 2.0  # the camera moved
    info = probe_media(out)
    assert [s.kind for s in info.streams] == ["video"]  # no audio track
    video = info.streams[0]
    assert (video.codec, video.fps) == ("h264", FPS)
    assert video.duration == pytest.approx(17 / FPS, abs=1e-3)


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
    out = tmp_path / "clip.mp4"
    render_still_clip(_ramp(tmp_path, axis), out, width=W, height=H, fps=FPS,
                      frames=10, move=move)  # fmt: skip
    frames = _frames(out)
    change = float(frames[-1].mean() - frames[0].mean())
    assert change > 5 if brighter else change < -5


@pytest.mark.parametrize("move", ["zoom_in", "zoom_out"])
def test_zooms_scale_about_ten_percent_around_the_centre(tmp_path, move):
    # A centred disc: its apparent width grows by the zoom factor.
    img = Image.new("L", (640, 360), 255)
    ImageDraw.Draw(img).ellipse((220, 80, 420, 280), fill=0)
    path = tmp_path / "disc.png"
    img.save(path)
    out = tmp_path / "clip.mp4"
    render_still_clip(path, out, width=W, height=H, fps=FPS, frames=12, move=move)
    frames = _frames(out)

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
    out = tmp_path / "clip.mp4"
    render_still_clip(path, out, width=W, height=H, fps=FPS, frames=2, move="zoom_in")
    dark = _frames(out)[0] < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert width == pytest.approx(height, rel=0.05)
    assert width == pytest.approx(W / 3, rel=0.05)  # covered: 600 px -> 320 px


def test_a_clip_is_one_gop_that_opens_on_a_keyframe(tmp_path, images):
    out = tmp_path / "clip.mp4"
    render_still_clip(images[0], out, width=W, height=H, fps=FPS, frames=40,
                      move="pan_left")  # fmt: skip
    with av.open(str(out)) as container:
        keys = [p.is_keyframe for p in container.demux(video=0) if p.size]
    assert len(keys) == 40
    assert keys[0] and not any(keys[1:])


def test_a_bad_move_or_image_is_a_value_error(tmp_path, images):
    with pytest.raises(ValueError, match="zoom_in"):
        render_still_clip(images[0], tmp_path / "a.mp4", width=W, height=H,
                          fps=FPS, frames=5, move="spin")  # fmt: skip
    text = tmp_path / "photo.jpg"
    text.write_text("not a photo")
    with pytest.raises(ValueError, match="photo.jpg"):
        render_still_clip(text, tmp_path / "b.mp4", width=W, height=H, fps=FPS,
                          frames=5, move="zoom_in")  # fmt: skip
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "b.mp4").exists()


def test_uploads_without_an_extension_still_decode(tmp_path, images):
    blob = tmp_path / "3f2a9c"  # stored under its content hash
    blob.write_bytes(images[1].read_bytes())
    out = tmp_path / "clip.mp4"
    render_still_clip(blob, out, width=W, height=H, fps=FPS, frames=3, move="zoom_out")
    assert len(_frames(out)) == 3


def test_phone_photos_are_turned_upright_by_their_exif_orientation(tmp_path):
    # Stored landscape with the dark half on top; orientation 6 means "turn 90°
    # clockwise to view", which puts the dark half on the right.
    pixels = np.full((300, 400), 255, dtype=np.uint8)
    pixels[:150] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif)
    out = tmp_path / "clip.mp4"
    render_still_clip(path, out, width=W, height=H, fps=FPS, frames=2, move="zoom_in")
    frame = _frames(out)[0]
    left, right = frame[:, : W // 2 - 10].mean(), frame[:, W // 2 + 10 :].mean()
    assert left > 200 and right < 50


def test_the_crop_keeps_the_focus_point_in_the_frame(tmp_path):
    # A tall image, dark at the top and bright at the bottom, into a wide frame:
    # only a band of it fits, and the focus decides which band.
    ramp = _ramp(tmp_path, 1)
    tall = tmp_path / "tall.png"
    Image.open(ramp).resize((300, 900)).save(tall)
    means = {}
    for fy in (0.0, 0.5, 1.0):
        out = tmp_path / f"focus{fy}.mp4"
        render_still_clip(tall, out, width=W, height=H, fps=FPS, frames=2,
                          move="zoom_out", focus=(0.5, fy))  # fmt: skip
        means[fy] = float(_frames(out)[-1].mean())
    assert means[0.0] < means[0.5] - 40 < means[1.0] - 80
