"""The whole music analysis, on songs synthesized with a known answer."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import workers.audio.analysis as analysis_module
from workers.assembly.ffmpeg import ffmpeg_exe
from workers.audio.analysis import (
    CONTRACT_KEYS,
    AudioAnalysisError,
    analyze_audio,
    main,
)
from workers.audio.synth import SongSpec, synthesize_song, write_wav

POP = (("intro", 2), ("verse", 4), ("chorus", 4), ("verse", 4), ("chorus", 4),
       ("outro", 2))  # fmt: skip


def _encode(source: Path, target: Path, *args: str) -> Path:
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(source), *args,
         str(target)],
        check=True,
    )  # fmt: skip
    return target


def _pcm(path: Path, samples: np.ndarray, sr: int = 22050) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def pop(tmp_path_factory):
    """40 s at 120 BPM: intro, verse, chorus, verse, chorus, outro, each part
    with its own chords and sound."""
    song = synthesize_song(
        SongSpec(bpm=120, seed=3, sections=POP, distinct_sections=True)
    )
    path = write_wav(tmp_path_factory.mktemp("pop") / "pop.wav", song)
    return song, path, analyze_audio(path)


def test_sections_are_found_and_labelled_by_repetition_and_energy(pop):
    song, _, result = pop
    found = result.sections
    assert found[0]["start"] == 0.0
    assert found[-1]["end"] == pytest.approx(result.duration, abs=0.01)
    assert all(a["end"] == b["start"] for a, b in zip(found, found[1:], strict=False))
    truth = [s["start"] for s in song.sections[1:]]
    starts = [s["start"] for s in found[1:]]
    for boundary in truth:
        assert min(abs(boundary - s) for s in starts) <= 3.0, boundary
    assert len(found) == len(song.sections)
    # The two loud repeats are the chorus; the quiet ends are intro and outro.
    labels = [s["label"] for s in found]
    assert labels == ["intro", "verse", "chorus", "verse", "chorus", "outro"]
    # Boundaries sit on downbeats.
    for start in starts:
        assert min(abs(start - d) for d in result.downbeats) < 1e-6


def test_a_waltz_is_in_three(tmp_path):
    song = synthesize_song(
        SongSpec(bpm=100, seed=4, beats_per_bar=3, distinct_sections=True,
                 sections=(("intro", 2), ("verse", 6), ("chorus", 6)))
    )  # fmt: skip
    result = analyze_audio(write_wav(tmp_path / "waltz.wav", song))
    assert result.meter == 3
    assert result.bpm == pytest.approx(100, rel=0.02)
    hits = sum(min(abs(d - t) for d in result.downbeats) < 0.07 for t in song.downbeats)
    assert hits >= 0.9 * len(song.downbeats)
    assert len(result.downbeats) == pytest.approx(len(song.downbeats), abs=1)


def test_common_time_is_in_four(pop):
    song, _, result = pop
    assert result.meter == 4
    hits = sum(min(abs(d - t) for d in result.downbeats) < 0.07 for t in song.downbeats)
    assert hits >= 0.9 * len(song.downbeats)


def test_a_tempo_ramp_shows_in_the_tempo_curve(tmp_path):
    song = synthesize_song(
        SongSpec(bpm=100, bpm_end=130, seed=5,
                 sections=(("verse", 6), ("chorus", 6), ("verse", 6)))
    )  # fmt: skip
    result = analyze_audio(write_wav(tmp_path / "ramp.wav", song))
    curve = result.tempo_curve
    assert len(curve) >= 2
    assert curve[0]["bpm"] == pytest.approx(100, rel=0.04)
    assert curve[-1]["bpm"] == pytest.approx(130, rel=0.04)
    assert [p["time"] for p in curve] == sorted(p["time"] for p in curve)
    assert result.bpm == pytest.approx(song.bpm, rel=0.02)  # the mean tempo
    hits = sum(min(abs(b - t) for b in result.beats) < 0.07 for t in song.beats)
    assert hits >= 0.95 * len(song.beats)


def test_a_steady_song_has_a_one_point_tempo_curve(pop):
    _, _, result = pop
    assert result.tempo_curve == [{"time": pytest.approx(0.0, abs=0.03), "bpm": 120.0}]


def test_energy_is_a_loudness_curve_over_the_whole_song(pop):
    song, _, result = pop
    energy = result.energy
    assert energy["hop_s"] == 0.05
    values = energy["values"]
    assert len(values) == int(result.duration / energy["hop_s"]) + 1
    assert all(-70.0 <= v <= 0.0 for v in values)

    def mean_in(section: dict) -> float:
        a, b = (int(section[k] / energy["hop_s"]) for k in ("start", "end"))
        return float(np.mean(values[a:b]))

    intro, _, chorus = (mean_in(s) for s in song.sections[:3])
    assert chorus > intro + 3
    assert -30 < result.loudness_lufs < -8


def test_an_mp3_gives_the_beats_of_its_wav(tmp_path, pop):
    _, wav, from_wav = pop
    mp3 = _encode(wav, tmp_path / "pop.mp3", "-c:a", "libmp3lame", "-b:a", "160k")
    from_mp3 = analyze_audio(mp3)
    assert from_mp3.duration == pytest.approx(from_wav.duration, abs=0.005)
    assert len(from_mp3.beats) == len(from_wav.beats)
    # ffmpeg honours the encoder's gapless header: no decoder delay.
    assert np.abs(np.subtract(from_mp3.beats, from_wav.beats)).max() < 0.005
    assert from_mp3.bpm == pytest.approx(from_wav.bpm, abs=0.05)


def test_to_dict_puts_the_contract_keys_first_and_is_json(pop):
    _, _, result = pop
    data = result.to_dict()
    assert tuple(data)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert set(data) == {*CONTRACT_KEYS, "meter", "tempo_curve", "loudness_lufs"}
    again = json.loads(json.dumps(data))
    assert again["sections"][0] == {"start": 0.0, "end": pytest.approx(4.0, abs=0.05),
                                    "label": "intro"}  # fmt: skip
    assert set(again["energy"]) == {"hop_s", "values"}
    assert 0.0 <= again["bpm_confidence"] <= 1.0


def test_progress_rises_from_zero_to_one(song_wav):
    seen: list[float] = []
    analyze_audio(song_wav, on_progress=seen.append)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert seen == sorted(seen)


def test_the_command_line_prints_the_contract(capsys, song_wav, tmp_path):
    svg = tmp_path / "song.svg"
    assert main([str(song_wav), "--json", "--svg", str(svg)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data)[:8] == list(CONTRACT_KEYS)
    assert svg.read_text().startswith("<svg")


def test_the_command_line_reports_bad_input_without_a_traceback(capsys, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\0" * 5000)
    assert main([str(junk), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: junk.mp3") and "Traceback" not in err


# Bad input: each is one clear sentence, never a traceback.


def test_silence_is_refused(tmp_path):
    path = _pcm(tmp_path / "silence.wav", np.zeros(22050 * 5))
    with pytest.raises(AudioAnalysisError, match="silent"):
        analyze_audio(path)


def test_a_two_second_clip_is_refused(tmp_path):
    song = synthesize_song(SongSpec(sections=(("verse", 1),)))  # 2 s at 120 BPM
    with pytest.raises(AudioAnalysisError, match=r"only 2\.0 s long"):
        analyze_audio(write_wav(tmp_path / "short.wav", song))


def _an_hour_of_silence(path: Path) -> Path:
    """A real hour-long WAV, kept small: 8-bit mono at 1 kHz (3.6 MB)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(1000)
        w.writeframes(bytes([128]) * 3_600_000)
    return path


def test_a_file_over_the_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("the file was decoded")

    monkeypatch.setattr(analysis_module, "decode_audio_native", no_decoding)
    path = _an_hour_of_silence(tmp_path / "hour.wav")
    with pytest.raises(AudioAnalysisError, match=r"1:00:00 long, over the 10:00"):
        analyze_audio(path, max_seconds=600)


def test_a_song_over_the_limit_is_refused_not_cut(song_wav):
    with pytest.raises(AudioAnalysisError, match="over the 0:05 limit"):
        analyze_audio(song_wav, max_seconds=5)
    assert analyze_audio(song_wav, max_seconds=60).duration == pytest.approx(12.0)


def test_a_corrupt_mp3_is_refused(tmp_path):
    junk = tmp_path / "broken.mp3"
    junk.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(AudioAnalysisError, match="broken.mp3") as err:
        analyze_audio(junk)
    assert "Traceback" not in str(err.value)


def test_an_mp3_with_garbage_through_it_is_refused(tmp_path, song_wav):
    mp3 = bytearray(_encode(song_wav, tmp_path / "ok.mp3", "-c:a", "libmp3lame")
                    .read_bytes())  # fmt: skip
    noise = np.random.default_rng(1)
    for at in range(4000, len(mp3) - 4000, 700):
        mp3[at : at + 300] = noise.bytes(300)
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(mp3))
    with pytest.raises(AudioAnalysisError, match=r"damaged.mp3: the audio is damaged"):
        analyze_audio(damaged)


def test_an_mp3_cut_off_after_its_header_is_refused(tmp_path, song_wav):
    mp3 = _encode(song_wav, tmp_path / "whole.mp3", "-c:a", "libmp3lame")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(mp3.read_bytes()[:3000])
    with pytest.raises(AudioAnalysisError, match="long|decod|read"):
        analyze_audio(cut)


def test_a_picture_has_no_audio_track(tmp_path):
    png = tmp_path / "cover.png"
    Image.new("RGB", (32, 32), (200, 30, 90)).save(png)
    with pytest.raises(AudioAnalysisError, match="no audio track"):
        analyze_audio(png)


def test_a_video_without_sound_has_no_audio_track(tmp_path):
    mp4 = tmp_path / "silent-film.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=64x64:rate=10", "-t", "1", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", str(mp4)],
        check=True,
    )  # fmt: skip
    with pytest.raises(AudioAnalysisError, match="no audio track"):
        analyze_audio(mp4)


def test_a_steady_tone_has_no_beat(tmp_path):
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(22050 * 6) / 22050)
    with pytest.raises(AudioAnalysisError, match="beat"):
        analyze_audio(_pcm(tmp_path / "tone.wav", tone))
