from __future__ import annotations

import json
import time
import wave

import numpy as np
import pytest

from workers.audio.synth import SongSpec, main, synthesize_song, write_wav

SPEC = SongSpec(sections=(("intro", 1), ("verse", 2), ("chorus", 2)))


def test_it_is_deterministic_for_a_seed():
    a = synthesize_song(SongSpec(seed=7, sections=SPEC.sections))
    b = synthesize_song(SongSpec(seed=7, sections=SPEC.sections))
    assert np.array_equal(a.samples, b.samples)
    assert a.truth() == b.truth()


def test_other_seeds_sound_different_on_the_same_grid():
    a = synthesize_song(SongSpec(seed=1, sections=SPEC.sections))
    b = synthesize_song(SongSpec(seed=2, sections=SPEC.sections))
    assert a.samples.shape == b.samples.shape
    assert a.beats == b.beats
    assert np.abs(a.samples - b.samples).mean() > 0.01


@pytest.mark.parametrize("bpm", [90.0, 123.0, 150.0])
def test_beat_i_is_at_i_times_the_beat_period(bpm):
    song = synthesize_song(SongSpec(bpm=bpm, sections=SPEC.sections))
    bars = sum(b for _, b in SPEC.sections)
    assert len(song.beats) == bars * 4
    assert song.beats == [i * 60.0 / bpm for i in range(bars * 4)]
    assert song.downbeats == song.beats[::4]
    assert song.duration == pytest.approx(bars * 4 * 60.0 / bpm, abs=1 / 44100)
    assert len(song.samples) == round(song.duration * song.sample_rate)


def test_kicks_sound_exactly_on_the_downbeats():
    # Low-passed energy jumps right after each verse downbeat, not before it.
    song = synthesize_song(SongSpec(sections=(("verse", 4),)))
    mono = song.samples.mean(axis=1)
    kernel = np.ones(64) / 64  # crude low-pass that keeps the kick
    low = np.convolve(mono, kernel, mode="same")
    sr = song.sample_rate
    window = int(0.01 * sr)
    for t in song.downbeats[1:]:
        i = round(t * sr)
        before = np.sqrt(np.mean(low[i - window : i] ** 2))
        after = np.sqrt(np.mean(low[i + 2 : i + window] ** 2))
        assert after > 3 * before, t


def test_sections_tile_the_song_and_the_chorus_is_loudest():
    song = synthesize_song(
        SongSpec(sections=(("intro", 2), ("verse", 2), ("chorus", 2)))
    )
    ends = [s["start"] for s in song.sections[1:]] + [song.duration]
    assert song.sections[0]["start"] == 0.0
    assert [s["end"] for s in song.sections] == pytest.approx(ends)
    sr = song.sample_rate

    def rms(section: dict) -> float:
        part = song.samples[int(section["start"] * sr) : int(section["end"] * sr)]
        return float(np.sqrt(np.mean(part**2)))

    intro, verse, chorus = (rms(s) for s in song.sections)
    assert intro < verse < chorus


def test_it_is_peak_normalized_stereo_float32():
    song = synthesize_song(SPEC)
    assert song.samples.dtype == np.float32
    assert song.samples.ndim == 2 and song.samples.shape[1] == 2
    peak_db = 20 * np.log10(np.abs(song.samples).max())
    assert peak_db == pytest.approx(-1.0, abs=0.05)


def test_a_minute_of_audio_takes_well_under_a_second():
    synthesize_song(SongSpec(sections=(("verse", 1),)))  # warm caches
    start = time.perf_counter()
    song = synthesize_song(SongSpec(sections=(("verse", 30),)))
    assert song.duration == pytest.approx(60.0)
    assert time.perf_counter() - start < 1.0


def test_write_wav_is_16_bit_stereo_pcm(tmp_path):
    song = synthesize_song(SPEC)
    path = write_wav(tmp_path / "x.wav", song)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (2, 2)
        assert w.getframerate() == song.sample_rate
        assert w.getnframes() == len(song.samples)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    assert np.abs(pcm / 32767 - song.samples).max() < 1e-4


def test_truth_is_json(tmp_path):
    truth = synthesize_song(SPEC).truth()
    again = json.loads(json.dumps(truth))
    assert again == truth
    assert set(truth) == {"bpm", "beats", "downbeats", "sections", "duration"}


def test_command_line_writes_song_and_truth(tmp_path):
    out, truth = tmp_path / "demo.wav", tmp_path / "demo.json"
    assert main([str(out), "--seed", "3", "--bpm", "100", "--truth", str(truth)]) == 0
    data = json.loads(truth.read_text())
    assert data["bpm"] == 100.0
    assert data["beats"][1] == pytest.approx(0.6)
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(data["duration"])


def test_it_rejects_impossible_specs():
    with pytest.raises(ValueError, match="bpm"):
        synthesize_song(SongSpec(bpm=0))
    with pytest.raises(ValueError, match="bar"):
        synthesize_song(SongSpec(sections=(("verse", 0),)))
