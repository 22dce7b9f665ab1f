from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from workers.assembly.concat import assemble_video, extract_thumbnail
from workers.assembly.stills import render_still_clip
from workers.audio.decode import decode_audio
from workers.probe import probe_media

W, H, FPS = 320, 180, 30
CLIP_FRAMES = (20, 25, 18)  # cuts after frame 20 and 45
DURATION = sum(CLIP_FRAMES) / FPS - 0.02  # deliberately not a whole frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    moves = ("zoom_in", "pan_left", "zoom_out")
    for i, (image, frames, move) in enumerate(
        zip(images, CLIP_FRAMES, moves, strict=True)
    ):
        path = folder / f"clip {i}'s.mp4"  # quotes and spaces must survive
        render_still_clip(image, path, width=W, height=H, fps=FPS, frames=frames,
                          move=move)  # fmt: skip
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def mp4(tmp_path_factory, clips, song_wav):
    out = tmp_path_factory.mktemp("mp4") / "video.mp4"
    seen: list[float] = []
    assemble_video(clips, song_wav, out, fps=FPS, duration=DURATION, audio_offset=2.0,
                   metadata={"title": "Banana", "studio_job": "42"},
                   on_progress=seen.append)  # fmt: skip
    return out, seen


def _gray_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray").astype(np.float32)
                for f in container.decode(video=0)]  # fmt: skip


def _frame_diffs(frames: list[np.ndarray]) -> np.ndarray:
    """Mean absolute change from each frame to the next."""
    return np.abs(np.diff(np.stack(frames), axis=0)).mean(axis=(1, 2))


def test_mp4_is_h264_and_aac_lasting_the_requested_time(mp4):
    out, seen = mp4
    info = probe_media(out)
    video, audio = info.of_kind("video")[0], info.of_kind("audio")[0]
    assert (video.codec, video.width, video.height) == ("h264", W, H)
    assert audio.codec == "aac"
    assert info.duration == pytest.approx(DURATION, abs=1 / FPS)
    assert video.duration == pytest.approx(DURATION, abs=1 / FPS)
    assert audio.duration == pytest.approx(DURATION, abs=1 / FPS)
    assert seen[-1] == 1.0
    assert [p.name for p in out.parent.iterdir()] == ["video.mp4"]  # no leftovers


def test_cuts_fall_exactly_on_the_clip_boundaries(mp4):
    frames = _gray_frames(mp4[0])
    assert len(frames) == round(DURATION * FPS)
    diffs = _frame_diffs(frames)
    # diffs[i] compares frame i and i+1, so a cut into frame k shows at k-1.
    cuts = sorted((np.argsort(diffs)[-2:] + 1).tolist())
    assert cuts == [CLIP_FRAMES[0], CLIP_FRAMES[0] + CLIP_FRAMES[1]]
    calm = np.delete(diffs, [c - 1 for c in cuts])
    assert diffs[[c - 1 for c in cuts]].min() > 5 * calm.max()


def test_music_starts_at_the_offset_and_fades_out(mp4, song_wav):
    sr = 8000
    mixed = decode_audio(mp4[0], sample_rate=sr)
    source = decode_audio(song_wav, sample_rate=sr)
    start = int(2.0 * sr)
    # Best alignment of the output against the song around 2.0 s.
    window = mixed[sr // 2 : sr // 2 + sr]
    lags = range(-200, 201)
    scores = [float(np.dot(window, source[start + sr // 2 + lag :][: len(window)]))
              for lag in lags]  # fmt: skip
    assert abs(lags[int(np.argmax(scores))]) <= 0.005 * sr  # within 5 ms

    def gain(end_s: float, length_s: float) -> float:
        """Output level over the song's level in the window ending end_s
        seconds before the end of the output."""
        stop = len(mixed) - int(end_s * sr)
        span = slice(stop - int(length_s * sr), stop)
        song = source[start:][span]
        return float(np.sqrt(np.mean(mixed[span] ** 2) / np.mean(song**2)))

    assert gain(0.6, 0.3) == pytest.approx(1.0, abs=0.15)  # before the fade
    assert gain(0.0, 0.05) < 0.15  # the last 50 ms are nearly silent


def test_metadata_round_trips(mp4):
    tags = probe_media(mp4[0]).tags
    assert tags["title"] == "Banana"
    assert tags["studio_job"] == "42"


def test_webm_is_vp9_and_opus(tmp_path, clips, song_wav):
    out = tmp_path / "video.webm"
    assemble_video(clips, song_wav, out, fps=FPS, duration=DURATION, fmt="webm",
                   metadata={"title": "Banana", "studio_job": "42"})  # fmt: skip
    info = probe_media(out)
    assert [(s.kind, s.codec) for s in info.streams] == [
        ("video", "vp9"),
        ("audio", "opus"),
    ]
    assert info.duration == pytest.approx(DURATION, abs=1 / FPS)
    # Matroska keeps tag names in upper case.
    tags = {k.lower(): v for k, v in info.tags.items()}
    assert tags["title"] == "Banana" and tags["studio_job"] == "42"
    frames = _gray_frames(out)
    diffs = _frame_diffs(frames)
    assert sorted((np.argsort(diffs)[-2:] + 1).tolist()) == [20, 45]
    # A thumbnail late in a WebM shows the last picture, not the first.
    thumb = tmp_path / "late.jpg"
    extract_thumbnail(out, thumb, at_seconds=DURATION - 0.1, width=W)
    with Image.open(thumb) as img:
        late = np.asarray(img.convert("L"), dtype=np.float32)
    assert np.abs(late - frames[-1]).mean() < np.abs(late - frames[0]).mean()


def test_gif_is_silent_small_and_slower(tmp_path, clips, song_wav):
    out = tmp_path / "video.gif"
    assemble_video(clips, song_wav, out, fps=FPS, duration=DURATION, fmt="gif")
    info = probe_media(out)
    assert [(s.kind, s.codec) for s in info.streams] == [("video", "gif")]
    assert info.streams[0].width == W  # already under the 480 px cap
    assert info.duration == pytest.approx(DURATION, abs=1 / 15)
    assert len(_gray_frames(out)) < DURATION * FPS  # reduced frame rate


def test_gif_is_at_most_480_pixels_wide(tmp_path, images, song_wav):
    clip = tmp_path / "wide.mp4"
    render_still_clip(images[2], clip, width=640, height=360, fps=FPS, frames=6,
                      move="zoom_in")  # fmt: skip
    out = tmp_path / "wide.gif"
    assemble_video([clip], song_wav, out, fps=FPS, duration=0.2, fmt="gif")
    video = probe_media(out).streams[0]
    assert (video.width, video.height) == (480, 270)


def test_clips_at_another_frame_rate_are_refused(tmp_path, clips, song_wav):
    with pytest.raises(ValueError, match="fps"):
        assemble_video(clips, song_wav, tmp_path / "x.mp4", fps=25, duration=1.0)


def test_a_short_song_is_padded_with_silence(tmp_path, clips, song_wav):
    out = tmp_path / "video.mp4"
    # The song is 12 s long: starting at 11 s leaves one second of music.
    assemble_video(clips, song_wav, out, fps=FPS, duration=DURATION, audio_offset=11.0)
    assert probe_media(out).duration == pytest.approx(DURATION, abs=1 / FPS)


def test_thumbnail_is_a_jpeg_of_the_requested_width(tmp_path, mp4):
    thumb = tmp_path / "thumb.jpg"
    extract_thumbnail(mp4[0], thumb, at_seconds=1.0, width=160)
    with Image.open(thumb) as img:
        assert img.format == "JPEG"
        assert img.size == (160, 90)
    late = tmp_path / "late.jpg"
    extract_thumbnail(mp4[0], late, at_seconds=999.0, width=160)  # clamped
    assert late.stat().st_size > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clips": []}, "no clips"),
        ({"fmt": "avi"}, "mp4, webm, gif"),
        ({"duration": 60.0}, "less than"),
        ({"duration": 0.0}, "positive"),
        ({"audio_offset": -1.0}, "negative"),
        ({"metadata": {"a=b": "c"}}, "plain name"),
    ],
)
def test_bad_requests_are_value_errors(tmp_path, clips, song_wav, kwargs, message):
    args = {"clips": clips, "fmt": "mp4", "duration": DURATION, **kwargs}
    with pytest.raises(ValueError, match=message):
        assemble_video(args.pop("clips"), song_wav, tmp_path / "x.mp4", fps=FPS,
                       **args)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_missing_music_is_a_value_error(tmp_path, clips):
    with pytest.raises(ValueError, match="does not exist"):
        assemble_video(clips, tmp_path / "none.wav", tmp_path / "x.mp4", fps=FPS,
                       duration=DURATION)  # fmt: skip
