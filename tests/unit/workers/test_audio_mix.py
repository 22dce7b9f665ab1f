"""The soundtrack mixer: exact length, loudness target, true-peak ceiling,
ducking under the voice, fades, gains and input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from tests.media_checks import write_stereo_wav
from workers.assembly.audio_mix import (
    MixReport,
    mix_audio,
    mix_filtergraph,
    true_peak_dbtp,
)
from workers.assembly.timeline import AudioTrack
from workers.audio.decode import decode_audio_native

RATE = 48000
DURATION = 6.0
TONE_HZ = 110.0  # a music tone the voice (300-3000 Hz) has none of
PHRASES = ((1.0, 2.5), (3.5, 5.0))  # when the voice speaks (seconds)


def _music(seconds: float, freqs: tuple[float, ...] = (TONE_HZ, 440.0, 660.0)):
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    # noise bursts on the beat (every 0.5 s, 60 ms long)
    bursts = rng.standard_normal(t.size) * ((t % 0.5) < 0.06) * 0.3
    x = x + bursts
    return x * (0.1 / np.sqrt(np.mean(x**2)))  # about -20 dBFS RMS


def _voice(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(2)
    t = np.arange(int(seconds * RATE)) / RATE
    band = butter(4, (300, 3000), btype="bandpass", fs=RATE, output="sos")
    noise = sosfilt(band, rng.standard_normal(t.size))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)  # ~4 syllables a second
    gate = np.zeros(t.size)
    for a, b in PHRASES:
        gate[(t >= a) & (t < b)] = 1.0
    x = noise * syllables * gate
    spoken = x[gate > 0]
    return x * (0.1 / np.sqrt(np.mean(spoken**2)))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mix")
    return {
        "music": write_stereo_wav(d / "music.wav", _music(8.0), RATE),
        "voice": write_stereo_wav(d / "voice.wav", _voice(DURATION), RATE),
        "low": write_stereo_wav(d / "low.wav", _music(8.0, (200.0,)), RATE),
        "high": write_stereo_wav(d / "high.wav", _music(8.0, (1000.0,)), RATE),
        "dir": d,
    }


def _band_level(x: np.ndarray, lo: float, hi: float) -> float:
    """Level (dB) of the band [lo, hi] Hz of mono ``x``."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / RATE)
    band = (freqs >= lo) & (freqs <= hi)
    return float(10 * np.log10(spectrum[band].sum() + 1e-30))


def _read(path: Path) -> np.ndarray:
    frames, rate = decode_audio_native(path)
    assert rate == RATE and frames.shape[1] == 2
    return np.asarray(frames, dtype=np.float64).mean(axis=1)


@pytest.fixture(scope="module")
def mixes(media) -> dict[str, tuple[MixReport, np.ndarray]]:
    d = media["dir"]
    music = AudioTrack(file=str(media["music"]), fade_in=0.5, fade_out=0.5)
    voice = AudioTrack(file=str(media["voice"]), role="voice")
    out = {}
    for name, tracks in (("alone", [music]), ("ducked", [music, voice])):
        report = mix_audio(tracks, d / f"{name}.wav", duration=DURATION)
        out[name] = (report, _read(d / f"{name}.wav"))
    return out


def test_length_loudness_and_peak(mixes) -> None:
    for report, x in mixes.values():
        assert abs(report.duration - DURATION) < 0.001
        assert abs(x.size / RATE - DURATION) < 0.001
        assert abs(report.integrated_lufs + 14.0) <= 1.0, report
        assert report.true_peak_db <= -1.0, report


def test_other_target_and_offset(media) -> None:
    tracks = [AudioTrack(file=str(media["music"]), start=0.5, offset=1.25)]
    out = media["dir"] / "quiet.wav"
    report = mix_audio(tracks, out, duration=4.321, target_lufs=-23.0)
    assert abs(report.duration - 4.321) < 0.001
    assert abs(report.integrated_lufs + 23.0) <= 1.0, report
    assert report.true_peak_db <= -1.0
    x = _read(out)
    assert np.max(np.abs(x[: int(0.45 * RATE)])) < 1e-3  # silent until start


def test_music_ducks_under_voice(mixes) -> None:
    alone, ducked = mixes["alone"][1], mixes["ducked"][1]
    drops = []
    for a, b in PHRASES:
        # the middle of each phrase, after the compressor's attack
        span = slice(int((a + 0.3) * RATE), int((b - 0.1) * RATE))
        level_alone = _band_level(alone[span], TONE_HZ - 5, TONE_HZ + 5)
        level_ducked = _band_level(ducked[span], TONE_HZ - 5, TONE_HZ + 5)
        drops.append(level_alone - level_ducked)
    assert min(drops) >= 6.0, drops


def test_fade_in(mixes) -> None:
    x = mixes["alone"][1]
    head = np.sqrt(np.mean(x[: int(0.05 * RATE)] ** 2))
    after = np.sqrt(np.mean(x[int(0.05 * RATE) : int(1.05 * RATE)] ** 2))
    assert 20 * np.log10(head / after) < -10


def test_gain_shifts_relative_level(media) -> None:
    d = media["dir"]
    low, high = str(media["low"]), str(media["high"])
    levels = {}
    for gain in (0.0, -6.0):
        tracks = [AudioTrack(file=low), AudioTrack(file=high, gain_db=gain)]
        mix_audio(tracks, d / f"gain{gain}.wav", duration=3.0)
        x = _read(d / f"gain{gain}.wav")
        levels[gain] = _band_level(x, 995, 1005) - _band_level(x, 195, 205)
    assert levels[0.0] - levels[-6.0] == pytest.approx(6.0, abs=0.5)


def test_filtergraph_shape(media) -> None:
    tracks = [
        AudioTrack(file="a.wav", gain_db=-3, fade_in=1, fade_out=2, start=1.5),
        AudioTrack(file="b.wav", role="voice", offset=2),
        AudioTrack(file="c.wav", role="music"),
    ]
    graph = mix_filtergraph(tracks, duration=10, lengths=[8.5, 8, 10])
    assert graph.startswith("[0:a]aformat=")
    assert "adelay=delays=1500:all=1" in graph
    assert "volume=-3dB" in graph
    assert "afade=t=in:st=1.5:d=1" in graph
    assert "afade=t=out:st=8:d=2" in graph
    assert "atrim=start=2," in graph
    assert "[m0][m2]amix=inputs=2:normalize=0" in graph
    assert "[music][vkey]sidechaincompress=" in graph
    assert graph.endswith("[mix]")
    assert "[2:a]" in graph and "apad=whole_len=480000" in graph
    # voice alone: no ducking stage
    alone = mix_filtergraph(tracks[1:2], duration=10, first_input=3)
    assert alone.startswith("[3:a]") and "sidechaincompress" not in alone


def test_true_peak_sees_intersample_overs() -> None:
    n = np.arange(4800)
    x = np.sin(2 * np.pi * (RATE / 4) * n / RATE + np.pi / 4)  # samples at 0.707
    assert np.max(np.abs(x)) < 0.71
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.2)


def test_bad_inputs(media, tmp_path: Path) -> None:
    music = str(media["music"])
    out = tmp_path / "x.wav"
    with pytest.raises(ValueError, match="no audio tracks"):
        mix_audio([], out, duration=2)
    with pytest.raises(ValueError, match="start must be >= 0"):
        mix_audio([AudioTrack(file=music, start=-1)], out, duration=2)
    with pytest.raises(ValueError, match="offset must be >= 0"):
        mix_audio([AudioTrack(file=music, offset=-0.5)], out, duration=2)
    with pytest.raises(ValueError, match="fades .* longer than the track"):
        mix_audio([AudioTrack(file=music, fade_in=1.5, fade_out=1)], out, duration=2)
    with pytest.raises(ValueError, match="file not found"):
        mix_audio([AudioTrack(file=str(tmp_path / "nope.wav"))], out, duration=2)
    with pytest.raises(ValueError, match="duration must be a positive"):
        mix_audio([AudioTrack(file=music)], out, duration=0)
    assert not out.exists()


def test_transients_are_limited(tmp_path: Path) -> None:
    # a quiet tone with full-scale clicks: reaching -14 LUFS needs ~+15 dB
    t = np.arange(int(4.0 * RATE)) / RATE
    x = 0.03 * np.sin(2 * np.pi * 220 * t)
    x[:: RATE // 4] = 0.95
    src = write_stereo_wav(tmp_path / "clicks.wav", x, RATE)
    report = mix_audio([AudioTrack(file=str(src))], tmp_path / "o.wav", duration=4.0)
    assert report.true_peak_db <= -1.0, report
    assert abs(report.integrated_lufs + 14.0) <= 1.0, report


def test_true_peak_by_blocks_equals_one_pass():
    # Blocks carry enough context that the streamed measurement is exact,
    # including an inter-sample over that straddles a block boundary.
    from scipy.signal import resample_poly

    from workers.assembly.audio_mix import true_peak_dbtp

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((50_000, 2)) * 0.2).astype(np.float32)
    x[4095:4097, 1] = [0.97, -0.97]  # alternating full-scale pair: a big over
    whole = resample_poly(x.astype(np.float64), 4, 1, axis=0)
    expected = 20 * np.log10(max(np.abs(whole).max(), np.abs(x).max()))
    assert expected > 20 * np.log10(0.97) + 0.5  # the over is really there
    assert true_peak_dbtp(x, block=4096) == pytest.approx(expected, abs=1e-5)
