"""The consistency gate on clips made from real faces: a clip of the
character passes, one that switches to someone else fails at the switch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from workers.faces.frames import ArrayFrames, StillFrames, VideoFrames
from workers.faces.gate import GateSettings, check_frames, sample_indices
from workers.faces.identity import build_identity
from workers.faces.providers import load_provider

from .faces_material import astronaut, hopper, write_clip

SIZE = (640, 360)
FPS = 30
FRAMES = 120  # four seconds
SWITCH = 61  # the first frame of the other person


@pytest.fixture(scope="module")
def provider():
    return load_provider("dlib")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("people")
    paths = {"astronaut": folder / "astronaut.png", "hopper": folder / "hopper.png"}
    Image.fromarray(astronaut()).save(paths["astronaut"])
    Image.fromarray(hopper()).save(paths["hopper"])
    return paths


@pytest.fixture(scope="module")
def identity(provider) -> np.ndarray:
    """The astronaut's identity, from her photo."""
    image = astronaut()
    return build_identity(provider.embed(image, provider.detect(image))).vector


def _moving(photo: Path, move: str = "zoom_in") -> StillFrames:
    return StillFrames(photo, SIZE, FRAMES, FPS, move, focus=(0.45, 0.25))


@pytest.fixture(scope="module")
def clips(tmp_path_factory, photos) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    her, other = _moving(photos["astronaut"]), _moving(photos["hopper"])
    return {
        "same": write_clip(folder / "same.mp4", her.frame, FRAMES, fps=FPS),
        "switch": write_clip(
            folder / "switch.mp4",
            lambda i: her.frame(i) if i < SWITCH else other.frame(i),
            FRAMES,
            fps=FPS,
        ),
    }


def _settings(provider, **changes) -> GateSettings:
    return GateSettings(threshold=provider.threshold, **changes)


def test_a_clip_of_the_character_passes(provider, identity, clips):
    result = check_frames(VideoFrames(clips["same"]), provider, identity,
                          _settings(provider))  # fmt: skip
    assert result.passed, result.reason
    assert result.presence == 1.0
    assert result.score is not None and result.score >= provider.threshold
    assert result.failure is None
    sampled = [f.frame for f in result.frames if f.sampled]
    assert sampled[0] == 0 and sampled[-1] == FRAMES - 1
    assert len(sampled) == 9  # two a second over four seconds, both ends


def test_a_clip_that_switches_person_fails_at_the_switch(provider, identity, clips):
    result = check_frames(VideoFrames(clips["switch"]), provider, identity,
                          _settings(provider))  # fmt: skip
    assert not result.passed
    assert result.failure is not None
    assert result.failure.frame == SWITCH
    assert result.failure.time == pytest.approx(SWITCH / FPS)
    assert result.score is not None and result.score < provider.threshold
    assert f"frame {SWITCH} ({SWITCH / FPS:.2f} s) shows someone else" in result.reason
    before = [f for f in result.frames if f.frame < SWITCH]
    assert before and all(f.score >= provider.threshold for f in before)


def test_someone_else_from_the_start_fails_at_the_first_frame(
    provider, identity, photos
):
    other = _moving(photos["hopper"])
    result = check_frames(other, provider, identity, _settings(provider))
    assert not result.passed
    assert result.failure is not None and result.failure.frame == 0


def test_a_still_of_the_character_under_a_camera_move_passes(
    provider, identity, photos
):
    for move in ("zoom_in", "pan_left", "push_out"):
        result = check_frames(_moving(photos["astronaut"], move), provider,
                              identity, _settings(provider))  # fmt: skip
        assert result.passed, f"{move}: {result.reason}"


def test_a_clip_without_the_character_fails_for_presence(provider, identity):
    coffee = np.ascontiguousarray(skimage.data.coffee()[:360, :600])
    frames = ArrayFrames([np.pad(coffee, ((0, 0), (20, 20), (0, 0)))] * 60, fps=30)
    result = check_frames(frames, provider, identity, _settings(provider))
    assert not result.passed
    assert result.presence == 0.0 and result.score is None
    assert "seen in 0 of" in result.reason


def test_a_character_seen_in_too_few_frames_fails(provider, identity, photos):
    her = _moving(photos["astronaut"], "static").frame(0)
    blank = np.zeros_like(her)
    frames = ArrayFrames([her] * 20 + [blank] * 100, fps=30)
    result = check_frames(frames, provider, identity, _settings(provider))
    assert not result.passed and result.failure is None
    assert 0 < result.presence < 0.5
    relaxed = _settings(provider, min_presence=0.2)
    assert check_frames(frames, provider, identity, relaxed).passed


def test_samples_span_the_clip_at_the_asked_rate():
    settings = GateSettings(threshold=0.5, samples_per_second=2.0)
    assert sample_indices(120, 30.0, settings) == [0, 15, 30, 45, 60, 74, 89, 104, 119]
    assert sample_indices(10, 30.0, settings) == [0, 4, 9]  # min_samples
    assert sample_indices(1, 30.0, settings) == [0]
    long = sample_indices(30 * 120, 30.0, settings)
    assert len(long) == settings.max_samples and long[-1] == 30 * 120 - 1


def test_bad_gate_settings_are_refused():
    with pytest.raises(ValueError):
        GateSettings(threshold=1.5)
    with pytest.raises(ValueError):
        GateSettings(threshold=0.5, samples_per_second=0)


def test_video_frames_can_look_back_past_what_they_hold(clips):
    video = VideoFrames(clips["same"], keep=4)
    late = video.frame(100)
    early = video.frame(10)  # decoded again from the start
    fresh = VideoFrames(clips["same"])
    np.testing.assert_array_equal(early, fresh.frame(10))
    np.testing.assert_array_equal(late, fresh.frame(100))
    assert video.frame_count == FRAMES and video.size == SIZE
    with pytest.raises(IndexError):
        fresh.frame(FRAMES + 5)


def test_a_file_that_is_not_a_video_is_a_clear_error(tmp_path):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="not a video that can be read"):
        VideoFrames(bad)
