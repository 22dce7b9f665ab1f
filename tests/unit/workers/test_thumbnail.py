"""choose_thumbnail picks a sharp, well exposed, colourful frame away from cuts."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageFilter

from workers.assembly.thumbnail import (
    ThumbnailChoice,
    choose_thumbnail,
    exposure_score,
    face_score,
    haar_faces,
    score_frame,
)

W, H, FPS = 320, 180, 10
SEGMENT = 1.5  # seconds


def _astronaut() -> np.ndarray:
    image = Image.fromarray(skimage.data.astronaut()).resize((W, H), Image.LANCZOS)
    return np.asarray(image)


def _write_video(path: Path, segments: list[np.ndarray]) -> Path:
    per_segment = round(SEGMENT * FPS)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"g": "10", "preset": "ultrafast", "crf": "18"}
        for picture in segments:
            for _ in range(per_segment):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def sharp() -> np.ndarray:
    return _astronaut()


@pytest.fixture(scope="module")
def mixed_video(tmp_path_factory: pytest.TempPathFactory, sharp) -> Path:
    """Blurred photo, black, white, then the sharp photo: 1.5 s each."""
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(5)))
    black = np.zeros((H, W, 3), dtype=np.uint8)
    white = np.full((H, W, 3), 255, dtype=np.uint8)
    path = tmp_path_factory.mktemp("thumb") / "mixed.mp4"
    return _write_video(path, [blurred, black, white, sharp])


@pytest.fixture(scope="module")
def twin_video(tmp_path_factory: pytest.TempPathFactory, sharp) -> Path:
    """The sharp photo, then its mirror image: equal quality, told apart by
    which half is brighter."""
    path = tmp_path_factory.mktemp("thumb") / "twin.mp4"
    return _write_video(path, [sharp, np.ascontiguousarray(sharp[:, ::-1])])


def _segment(t: float) -> int:
    return int(t // SEGMENT)


def test_picks_the_sharp_colourful_segment(
    mixed_video: Path, sharp: np.ndarray, tmp_path: Path
) -> None:
    out = tmp_path / "thumb.jpg"
    choice = choose_thumbnail(mixed_video, out, width=640)
    assert isinstance(choice, ThumbnailChoice)
    assert _segment(choice.time) == 3, choice
    assert 0.0 < choice.score
    assert choice.face == 0.0
    with Image.open(out) as image:
        assert image.format == "JPEG"
        assert image.width == 640
        assert image.height % 2 == 0
        assert image.height == 360
        picture = np.asarray(image.convert("RGB").resize((W, H)), dtype=np.float64)
    assert np.abs(picture - sharp).mean() < 10  # the sharp photo itself
    assert not list(tmp_path.glob(".*part*"))


def test_avoid_steers_to_another_usable_frame(
    mixed_video: Path, tmp_path: Path
) -> None:
    avoid = [4.5 + 0.1 * i for i in range(16)]  # the whole sharp segment
    choice = choose_thumbnail(mixed_video, tmp_path / "t.jpg", avoid=avoid)
    assert all(abs(choice.time - a) >= 0.25 for a in avoid)
    assert _segment(choice.time) == 0, choice  # blurred, not black or white
    assert choice.exposure > 0.3


def test_skips_the_ends(mixed_video: Path, tmp_path: Path) -> None:
    choice = choose_thumbnail(mixed_video, tmp_path / "t.jpg", candidates=60)
    assert 0.2 <= choice.time <= 6.0 - 0.2


def test_face_detector_pulls_the_choice(
    twin_video: Path, sharp: np.ndarray, tmp_path: Path
) -> None:
    left_brighter = sharp[:, : W // 2].mean() > sharp[:, W // 2 :].mean()

    def is_original(rgb: np.ndarray) -> bool:
        half = rgb.shape[1] // 2
        return bool((rgb[:, :half].mean() > rgb[:, half:].mean()) == left_brighter)

    for face_in_original in (True, False):

        def detector(rgb: np.ndarray, want: bool = face_in_original):
            h, w = rgb.shape[:2]
            box = (w // 3, h // 6, w // 3, h // 2)
            return [box] if is_original(rgb) == want else []

        choice = choose_thumbnail(
            twin_video, tmp_path / "t.jpg", width=320, face_boxes=detector
        )
        assert choice.face > 0.5
        assert _segment(choice.time) == (0 if face_in_original else 1), choice


def test_missing_video(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        choose_thumbnail(tmp_path / "nope.mp4", tmp_path / "t.jpg")


def test_unreadable_video(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="cannot be read"):
        choose_thumbnail(bogus, tmp_path / "t.jpg")


def test_with_every_sample_excluded_the_middle_frame_is_used(
    mixed_video: Path, tmp_path: Path
) -> None:
    avoid = [0.1 * i for i in range(61)]  # a cut every 0.1 s: nothing usable
    choice = choose_thumbnail(mixed_video, tmp_path / "t.jpg", avoid=avoid)
    with av.open(str(mixed_video)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        length = float(stream.duration * stream.time_base)
    assert choice.time == pytest.approx(length / 2, abs=0.1)
    assert (tmp_path / "t.jpg").stat().st_size > 0


def test_a_black_video_still_gets_its_best_frame(tmp_path: Path) -> None:
    from workers.assembly.ffmpeg import run_ffmpeg

    black = tmp_path / "black.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", "color=c=black:s=160x90:r=10:d=2",
         "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        output=black,
    )  # fmt: skip
    choice = choose_thumbnail(black, tmp_path / "t.jpg")
    assert choice.exposure < 0.05  # nothing better exists; it is still made
    assert (tmp_path / "t.jpg").stat().st_size > 0


def test_odd_width_gives_even_height(mixed_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "odd.jpg"
    choose_thumbnail(mixed_video, out, width=333, candidates=6)
    with Image.open(out) as image:
        assert image.size == (333, 188)


def test_bad_arguments(mixed_video: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="width"):
        choose_thumbnail(mixed_video, tmp_path / "t.jpg", width=1)
    with pytest.raises(ValueError, match="candidate"):
        choose_thumbnail(mixed_video, tmp_path / "t.jpg", candidates=0)


def test_score_terms() -> None:
    grey = np.full((90, 160, 3), 128, dtype=np.uint8)
    flat = score_frame(grey)
    assert flat.exposure == pytest.approx(1.0, abs=0.01)
    assert flat.sharpness == pytest.approx(0.0)
    assert flat.colourfulness == pytest.approx(0.0)
    assert exposure_score(np.zeros((4, 4))) == 0.0
    assert exposure_score(np.full((4, 4), 255.0)) == 0.0
    # A face of fair size at the upper centre beats a tiny one in a corner.
    centred = face_score([(60, 15, 40, 40)], 160, 90)
    corner = face_score([(0, 80, 4, 4)], 160, 90)
    assert centred > 0.9 > 0.1 > corner
    assert face_score([], 160, 90) == 0.0


def test_the_opencv_face_detector_finds_the_astronaut_and_not_a_flat_frame():
    portrait = np.asarray(skimage.data.astronaut())  # 512x512, face upper centre
    small = np.asarray(Image.fromarray(portrait).resize((320, 320)))
    boxes = haar_faces(small)
    assert boxes, "no face found in the astronaut portrait"
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    cx, cy = (x + w / 2) / 320, (y + h / 2) / 320
    # Eileen Collins' face sits at about (0.45, 0.25) of the picture.
    assert 0.3 < cx < 0.6 and 0.1 < cy < 0.4
    assert haar_faces(np.full((180, 320, 3), 128, np.uint8)) == []
