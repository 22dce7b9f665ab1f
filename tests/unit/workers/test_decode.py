from __future__ import annotations

import subprocess

import numpy as np
import pytest

from workers.assembly.ffmpeg import ffmpeg_exe
from workers.audio.decode import AudioDecodeError, decode_audio, decode_audio_native


def test_it_decodes_a_wav_exactly_at_its_own_rate(song_wav, short_song):
    stereo = decode_audio(song_wav, sample_rate=44100, mono=False)
    assert stereo.dtype == np.float32
    assert stereo.shape == short_song.samples.shape
    assert np.abs(stereo - short_song.samples).max() < 1e-4


def test_mono_is_the_channel_mean_at_the_requested_rate(song_wav, short_song):
    mono = decode_audio(song_wav, sample_rate=22050)
    assert mono.ndim == 1
    assert len(mono) == pytest.approx(short_song.duration * 22050, abs=2)
    # Compare loudness rather than samples: resampling shifts phases slightly.
    expected = np.sqrt(np.mean(short_song.samples.mean(axis=1) ** 2))
    assert np.sqrt(np.mean(mono**2)) == pytest.approx(expected, rel=0.05)


def test_max_seconds_stops_early(song_wav):
    head = decode_audio(song_wav, sample_rate=8000, max_seconds=2.5)
    assert len(head) == 20000


def test_it_decodes_an_mp3(tmp_path, song_wav, short_song):
    mp3 = tmp_path / "song.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(song_wav), "-c:a", "libmp3lame",
         "-b:a", "128k", str(mp3)],
        check=True,
    )  # fmt: skip
    audio = decode_audio(mp3, sample_rate=22050)
    # MP3 adds encoder delay and padding of a few ms at most.
    assert len(audio) / 22050 == pytest.approx(short_song.duration, abs=0.1)
    assert np.abs(audio).max() > 0.5


def test_a_text_file_is_a_clear_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are not the beats you are looking for\n" * 20)
    with pytest.raises(AudioDecodeError, match="notes.txt") as err:
        decode_audio(notes)
    assert "Traceback" not in str(err.value)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AudioDecodeError, match="does not exist"):
        decode_audio(tmp_path / "gone.wav")


def test_an_image_has_no_audio_track(images):
    with pytest.raises(AudioDecodeError, match="no audio"):
        decode_audio(images[0])


def test_a_truncated_mp3_with_garbage_is_an_error(tmp_path):
    junk = tmp_path / "broken.mp3"
    junk.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(AudioDecodeError):
        decode_audio(junk)


def test_native_decoding_keeps_the_files_rate_and_channels(song_wav, short_song):
    frames, rate = decode_audio_native(song_wav)
    assert rate == 44100
    assert frames.shape == short_song.samples.shape
    assert np.abs(frames - short_song.samples).max() < 1e-4
    capped, rate = decode_audio_native(song_wav, max_rate=16000)
    assert rate == 16000
    assert len(capped) == pytest.approx(short_song.duration * 16000, abs=2)


def test_an_mp3_with_garbage_through_it_is_damaged(tmp_path, song_wav):
    mp3 = tmp_path / "song.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(song_wav), "-c:a", "libmp3lame",
         str(mp3)],
        check=True,
    )  # fmt: skip
    data = bytearray(mp3.read_bytes())
    noise = np.random.default_rng(2)
    for at in range(4000, len(data) - 4000, 600):
        data[at : at + 300] = noise.bytes(300)
    mp3.write_bytes(bytes(data))
    with pytest.raises(AudioDecodeError, match="damaged"):
        decode_audio(mp3)
