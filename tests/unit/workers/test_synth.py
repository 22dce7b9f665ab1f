from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from workers.audio.synth import SongSpec, main, synthesize_song, write_wav

SR = 22050

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
    assert set(truth) == {
        "bpm", "beats", "downbeats", "sections", "duration", "beats_per_bar",
        "tempo_curve",
    }  # fmt: skip
    assert truth["tempo_curve"] == [{"time": 0.0, "bpm": 120.0}]


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


def _onset_times(song, part_filter_hz: float | None = None) -> np.ndarray:
    """Sample times where the level jumps: a crude onset detector for checks."""
    mono = np.abs(song.samples.mean(axis=1))
    hop = int(0.005 * song.sample_rate)
    frames = mono[: len(mono) // hop * hop].reshape(-1, hop).max(axis=1)
    rise = np.diff(frames, prepend=0.0)
    peaks = np.flatnonzero(rise > 0.25 * rise.max())
    return peaks * hop / song.sample_rate


def test_a_tempo_ramp_integrates_the_beats_from_the_tempo():
    song = synthesize_song(
        SongSpec(bpm=100, bpm_end=140, sections=(("verse", 8),), sample_rate=SR)
    )
    ibi = np.diff(song.beats)
    # The beat period shrinks steadily from 60/100 towards 60/140.
    assert ibi[0] == pytest.approx(0.6, rel=0.01)
    assert ibi[-1] == pytest.approx(60 / 140, rel=0.02)
    assert np.all(np.diff(ibi) < 0)
    # Tempo linear in time: the mean tempo is the mean of the ends.
    assert song.bpm == pytest.approx(120.0)
    assert song.duration == pytest.approx(32 * 60 / 120, rel=1e-6)
    assert song.tempo_curve == [{"time": 0.0, "bpm": 100.0},
                                {"time": song.duration, "bpm": 140.0}]  # fmt: skip
    assert song.downbeats == song.beats[::4]


def test_three_four_puts_a_downbeat_every_third_beat():
    song = synthesize_song(
        SongSpec(bpm=90, beats_per_bar=3, sections=(("verse", 4),), sample_rate=SR)
    )
    assert len(song.beats) == 12
    assert song.downbeats == song.beats[::3]
    assert song.truth()["beats_per_bar"] == 3


def test_swing_moves_the_off_beat_eighths_late():
    def offbeat_hat_level(spec: SongSpec, at: float) -> float:
        song = synthesize_song(spec)
        i = round(at * song.sample_rate)
        w = int(0.004 * song.sample_rate)
        return float(np.abs(np.diff(song.samples[i - w : i + w, 1])).max())

    sections = (("intro", 2),)  # hats and pad only
    straight = SongSpec(bpm=120, sections=sections, sample_rate=SR)
    swung = SongSpec(bpm=120, sections=sections, sample_rate=SR, swing=2.0)
    # At 120 BPM the straight off-beat is 0.25 s after the beat, the
    # triplet-swung one 1/3 s after it.
    assert offbeat_hat_level(swung, 1 / 3) > 2 * offbeat_hat_level(straight, 1 / 3)
    assert offbeat_hat_level(straight, 0.25) > 2 * offbeat_hat_level(swung, 0.25)
    assert synthesize_song(swung).beats == synthesize_song(straight).beats


def test_a_sparse_intro_is_quieter_and_thinner():
    sections = (("intro", 4), ("verse", 4))
    full = synthesize_song(SongSpec(sections=sections, sample_rate=SR))
    sparse = synthesize_song(SongSpec(sections=sections, sample_rate=SR,
                                      sparse_intro=True))  # fmt: skip
    cut = int(8.0 * SR)  # the intro's four bars at 120 BPM

    def hiss(x: np.ndarray) -> float:
        # The hats are what a first difference keeps; the pad mostly goes.
        return float(np.sqrt(np.mean(np.diff(x[:, 0]) ** 2)))

    # One hat a bar instead of eight.
    assert hiss(sparse.samples[:cut]) < 0.6 * hiss(full.samples[:cut])
    assert hiss(sparse.samples[cut:]) == pytest.approx(
        hiss(full.samples[cut:]), rel=0.02
    )
    assert sparse.beats == full.beats


def test_noise_is_added_at_the_asked_snr():
    sections = (("verse", 4),)
    clean = synthesize_song(SongSpec(sections=sections, sample_rate=SR))
    noisy = synthesize_song(SongSpec(sections=sections, sample_rate=SR,
                                     noise_snr_db=10))  # fmt: skip
    # Both are peak-normalized, so compare shapes: the residual after the
    # best scaling of the clean song is the noise.
    x, y = clean.samples.ravel().astype(np.float64), noisy.samples.ravel()
    scale = float(np.dot(x, y) / np.dot(x, x))
    residual = y - scale * x
    snr = 10 * np.log10(np.mean((scale * x) ** 2) / np.mean(residual**2))
    assert snr == pytest.approx(10, abs=1.0)


def test_syncopation_pushes_the_kick_and_bass_off_the_beat():
    sections = (("verse", 4),)
    plain = synthesize_song(SongSpec(sections=sections, sample_rate=SR))
    synco = synthesize_song(SongSpec(sections=sections, sample_rate=SR,
                                     syncopation=True))  # fmt: skip
    kernel = np.ones(64) / 64

    def low_at(song, t: float) -> float:
        low = np.convolve(song.samples.mean(axis=1), kernel, mode="same")
        i = round(t * SR)
        return float(np.abs(low[i : i + int(0.03 * SR)]).max())

    and_of_two = 0.5 + 0.25  # beat 2 is at 0.5 s; its "and" 0.25 s later
    assert low_at(synco, and_of_two) > 2 * low_at(plain, and_of_two)
    assert synco.beats == plain.beats


def test_distinct_sections_repeat_their_own_material():
    spec = SongSpec(
        sample_rate=SR,
        distinct_sections=True,
        sections=(("verse", 4), ("chorus", 4), ("verse", 4), ("bridge", 4)),
    )
    song = synthesize_song(spec)
    bar = int(2.0 * SR)
    verse1, chorus, verse2, bridge = (
        song.samples[i * 4 * bar : (i + 1) * 4 * bar, 0] for i in range(4)
    )

    def spectrum(x: np.ndarray) -> np.ndarray:
        mag = np.abs(np.fft.rfft(x))
        return mag / np.linalg.norm(mag)

    same = float(np.dot(spectrum(verse1), spectrum(verse2)))
    assert same > 0.99  # a repeated label repeats its material
    assert float(np.dot(spectrum(verse1), spectrum(chorus))) < same - 0.1
    assert float(np.dot(spectrum(verse1), spectrum(bridge))) < same - 0.1
    assert [s["label"] for s in song.sections] == ["verse", "chorus", "verse", "bridge"]
