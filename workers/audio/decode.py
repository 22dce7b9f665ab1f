"""Decode any audio file ffmpeg understands into a float32 numpy array."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from workers.assembly.ffmpeg import base_command, demuxer_name, input_args, stderr_tail
from workers.probe import ProbeError, probe_media


class AudioDecodeError(ValueError):
    """The file cannot be decoded as audio; the message is fit to show a user."""


def decode_audio(
    path: str | Path,
    sample_rate: int = 22050,
    mono: bool = True,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Samples of the first audio stream of ``path`` as float32 in [-1, 1].

    Shape (n,) when ``mono`` (the mean of the channels, as librosa does), else
    (n, channels) with the file's own channel count. ``max_seconds`` stops
    decoding early. The file is decoded once, by the ffmpeg binary, to a pipe.
    """
    if sample_rate < 1:
        raise ValueError("sample_rate must be positive")
    frames, _ = _decode(Path(path), sample_rate, None, max_seconds)
    return frames.mean(axis=1, dtype=np.float32) if mono else frames.copy()


def decode_audio_native(
    path: str | Path, max_rate: int = 48000, max_seconds: float | None = None
) -> tuple[np.ndarray, int]:
    """All channels of the first audio stream at the file's own sample rate
    (at most ``max_rate``): ``(frames (n, channels) float32, rate)``.

    For measurements that need the whole band, such as BS.1770 loudness.
    The array is a read-only view of ffmpeg's output (no copy is made).
    """
    if max_rate < 1:
        raise ValueError("max_rate must be positive")
    return _decode(Path(path), None, max_rate, max_seconds)


def _decode(
    path: Path,
    sample_rate: int | None,
    max_rate: int | None,
    max_seconds: float | None,
) -> tuple[np.ndarray, int]:
    name = path.name
    if not path.is_file():
        raise AudioDecodeError(f"{name}: the file does not exist.")
    # Probing reads only the headers; it tells "no audio here" apart from
    # "audio that will not decode" and lets us force the demuxer ffmpeg found.
    try:
        info = probe_media(path)
    except ProbeError:
        raise AudioDecodeError(
            f"{name}: this is not an audio file that can be read."
        ) from None
    streams = info.of_kind("audio")
    fmt = demuxer_name(info.format_name)
    if not streams or fmt is None:
        raise AudioDecodeError(f"{name}: the file has no audio track.")
    if sample_rate is None:
        native = streams[0].sample_rate or 44100
        sample_rate = min(native, max_rate) if max_rate else native
    # All channels come down the pipe and are averaged by the caller:
    # ffmpeg's own downmix (-ac 1) adds channels at -3 dB, which can exceed
    # full scale.
    channels = streams[0].channels or 2
    cmd = [
        *base_command(),
        *input_args(path, fmt=fmt),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
    ]
    if max_seconds is not None:
        cmd += ["-t", f"{max(max_seconds, 0.0):.6f}"]
    cmd += ["-f", "f32le", "-ac", str(channels), "-ar", str(sample_rate), "pipe:1"]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    except OSError as exc:
        raise AudioDecodeError(f"{name}: the audio decoder could not start.") from exc
    if proc.returncode != 0:
        detail = stderr_tail(proc.stderr.decode("utf-8", "replace"))
        raise AudioDecodeError(
            f"{name}: the audio is damaged or in a format that cannot be decoded"
            + (f" ({detail.splitlines()[-1]})." if detail else ".")
        )
    usable = len(proc.stdout) - len(proc.stdout) % (4 * channels)
    # A read-only view, not a copy: nothing downstream writes to it.
    samples = np.frombuffer(proc.stdout, dtype="<f4", count=usable // 4)
    if samples.size == 0:
        raise AudioDecodeError(f"{name}: the file contains no decodable audio.")
    frames = samples.reshape(-1, channels)
    # ffmpeg skips what it cannot decode and still succeeds; a file that
    # errors and comes out far shorter than its header says is damaged.
    expected = streams[0].duration or info.duration
    got = len(frames) / sample_rate
    if (
        proc.stderr.strip()
        and expected
        and (max_seconds is None or max_seconds >= expected)
        and got < 0.9 * expected - 0.5
    ):
        raise AudioDecodeError(
            f"{name}: the audio is damaged; only {got:.1f} s of its "
            f"{expected:.1f} s could be decoded."
        )
    return frames, sample_rate
