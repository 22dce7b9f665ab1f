"""BS.1770-4 loudness: K-weighting, gating, and what the analysis reports."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from workers.audio.decode import decode_audio_native
from workers.audio.loudness import (
    KPower,
    integrated_loudness,
    k_weighting,
    loudness_curve,
)

SR = 48000


def _sine(seconds: float, dbfs: float, hz: float = 1000.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _lufs(frames: np.ndarray, sr: int = SR) -> float:
    return integrated_loudness(KPower(frames, sr))


def _wav(path: Path, frames: np.ndarray, sr: int) -> Path:
    frames = frames[:, None] if frames.ndim == 1 else frames
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_the_k_weighting_at_48k_is_the_standards():
    # ITU-R BS.1770-4, tables 1 and 2.
    shelf, highpass = k_weighting(48000)
    assert shelf[:3] == pytest.approx([1.53512485958697, -2.69169618940638,
                                       1.19839281085285], abs=1e-9)  # fmt: skip
    assert shelf[4:] == pytest.approx([-1.69065929318241, 0.73248077421585], abs=1e-9)
    assert highpass[:3] == pytest.approx([1.0, -2.0, 1.0])
    assert highpass[4:] == pytest.approx([-1.99004745483398, 0.99007225036621],
                                         abs=1e-9)  # fmt: skip


@pytest.mark.parametrize("sr", [48000, 44100, 22050])
def test_a_full_scale_sine_in_one_channel_reads_minus_3_lufs(sr):
    assert _lufs(_sine(5, 0.0, sr=sr), sr) == pytest.approx(-3.01, abs=0.05)


def test_a_minus_20_dbfs_sine_file_reads_its_standard_loudness(tmp_path):
    # Mono: -20 dBFS peak in one channel is -23.01 LUFS; the same tone in
    # both channels of a stereo file sums to -20.0 LUFS.
    tone = _sine(10, -20.0, sr=44100)
    mono, rate = decode_audio_native(_wav(tmp_path / "mono.wav", tone, 44100))
    assert rate == 44100
    assert _lufs(mono, rate) == pytest.approx(-23.01, abs=0.5)
    stereo, rate = decode_audio_native(
        _wav(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1), 44100)
    )
    assert stereo.shape[1] == 2
    assert _lufs(stereo, rate) == pytest.approx(-20.0, abs=0.5)
    assert _lufs(stereo, rate) == pytest.approx(-20.0, abs=0.05)  # and in fact


def test_silence_below_the_absolute_gate_does_not_count():
    # (Only the few blocks straddling an edge are partly silent.)
    tone = _sine(20, -20.0)
    padded = np.concatenate([tone, np.zeros(30 * SR, np.float32), tone])
    assert _lufs(padded) == pytest.approx(_lufs(tone), abs=0.05)


def test_quiet_passages_below_the_relative_gate_do_not_count():
    loud, quiet = _sine(20, -10.0), _sine(20, -40.0)  # 30 dB apart
    both = np.concatenate([loud, quiet, loud])
    assert _lufs(both) == pytest.approx(_lufs(loud), abs=0.05)
    # ...but a passage within 10 LU does.
    near = np.concatenate([loud, _sine(20, -16.0), loud])
    assert _lufs(near) < _lufs(loud) - 0.5


def test_low_rumble_weighs_less_than_presence():
    # K-weighting: 40 Hz is cut, 4 kHz lifted, relative to 1 kHz.
    assert _lufs(_sine(3, -20, 40)) < _lufs(_sine(3, -20, 1000)) - 1.0
    assert _lufs(_sine(3, -20, 4000)) > _lufs(_sine(3, -20, 1000)) + 2.0


def test_pure_silence_reads_the_gate():
    assert _lufs(np.zeros(SR, np.float32)) == -70.0


def test_the_loudness_curve_has_one_value_per_hop():
    tone = np.concatenate([_sine(2, -30.0), _sine(2, -10.0)])
    values = loudness_curve(KPower(tone, SR), 0.05, 4.0)
    assert len(values) == 81
    assert values[10] == pytest.approx(-33.0, abs=0.3)
    assert values[70] == pytest.approx(-13.0, abs=0.3)
    assert min(values) >= -70.0
