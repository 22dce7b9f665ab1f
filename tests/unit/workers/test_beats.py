"""Tempo, beats, downbeats and onsets: the grid a music video is cut on."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from workers.audio.analysis import AudioAnalysisError, analyze_audio
from workers.audio.beats import BeatAnalysis, analyze_beats
from workers.audio.synth import SongSpec, synthesize_song, write_wav

SECTIONS = (("intro", 2), ("verse", 4), ("chorus", 4))


def f_measure(estimated: list[float], reference: list[float], tol: float = 0.07):
    """Beat F-measure: each reference beat matches at most one estimate within
    ``tol`` seconds (the usual +-70 ms window)."""
    free = sorted(estimated)
    hits = 0
    for ref in reference:
        near = [e for e in free if abs(e - ref) <= tol]
        if near:
            free.remove(min(near, key=lambda e: abs(e - ref)))
            hits += 1
    if not hits:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)


def _write_pcm(path, samples: np.ndarray, sr: int = 22050):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_f_measure_can_fail():
    assert f_measure([0.0, 0.5, 1.0], [0.0, 0.5, 1.0]) == 1.0
    assert f_measure([0.25, 0.75], [0.0, 0.5, 1.0]) == 0.0


@pytest.mark.parametrize(
    ("bpm", "seed", "swing"), [(64, 3, 1.0), (90, 0, 1.0), (120, 1, 2.0), (150, 2, 1.0),
                               (186, 4, 1.0)]
)  # fmt: skip
def test_it_finds_the_synthesized_grid(tmp_path, bpm, seed, swing):
    song = synthesize_song(
        SongSpec(bpm=bpm, seed=seed, sections=SECTIONS, sample_rate=22050, swing=swing)
    )
    result = analyze_audio(write_wav(tmp_path / "song.wav", song))
    # The right octave at both ends of the range: no halving, no doubling.
    assert result.bpm == pytest.approx(bpm, rel=0.03)
    assert f_measure(result.beats, song.beats) >= 0.9
    assert f_measure(result.downbeats, song.downbeats) >= 0.9
    # Cuts snap to these times, so they must be tighter than a video frame.
    errors = [min(abs(b - t) for b in result.beats) for t in song.beats]
    assert np.median(errors) < 0.02
    # Refined to the attacks: every found beat within 10 ms, a third of a frame.
    assert max(e for e in errors if e <= 0.07) < 0.01
    assert result.duration == pytest.approx(song.duration, abs=0.01)
    assert 0.5 < result.bpm_confidence <= 1.0
    # Every beat is also an onset here: drums or chords start on each one.
    assert f_measure(result.onsets, song.beats) > 0.5


def test_syncopation_does_not_move_the_beat_off_the_beat(tmp_path):
    song = synthesize_song(
        SongSpec(bpm=104, seed=6, syncopation=True, sample_rate=22050,
                 sections=(("verse", 8), ("chorus", 8)))
    )  # fmt: skip
    result = analyze_audio(write_wav(tmp_path / "funk.wav", song))
    assert result.bpm == pytest.approx(104, rel=0.03)
    assert f_measure(result.beats, song.beats) >= 0.95


def test_noise_gets_less_tempo_confidence_than_music(tmp_path, song_wav):
    noise = np.random.default_rng(0).standard_normal(22050 * 8) * 0.1
    from_noise = analyze_audio(_write_pcm(tmp_path / "noise.wav", noise))
    from_song = analyze_audio(song_wav)
    assert 0.0 <= from_noise.bpm_confidence < from_song.bpm_confidence


def test_the_old_name_still_works(song_wav):
    result = analyze_beats(song_wav)
    assert isinstance(result, BeatAnalysis)
    for key in ("duration", "bpm", "bpm_confidence", "beats", "downbeats", "onsets"):
        assert getattr(result, key) == result.to_dict()[key]
    assert result.bpm == pytest.approx(120, rel=0.02)


def test_silence_is_an_analysis_error(tmp_path):
    path = _write_pcm(tmp_path / "silence.wav", np.zeros(22050 * 5))
    with pytest.raises(AudioAnalysisError, match="silent"):
        analyze_beats(path)


def test_two_seconds_is_too_short(tmp_path):
    song = synthesize_song(SongSpec(sections=(("verse", 1),)))  # 2 s at 120 BPM
    with pytest.raises(AudioAnalysisError, match="at least 3 s"):
        analyze_beats(write_wav(tmp_path / "short.wav", song))
