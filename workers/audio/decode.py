"""Decode any audio file ffmpeg understands into a float32 numpy array."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from workers.assembly.ffmpeg import demuxer_name, ffmpeg_exe, input_args, stderr_tail
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
    path = Path(path)
    name = path.name
    if sample_rate < 1:
        raise ValueError("sample_rate must be positive")
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
    # All channels come down the pipe and are averaged here: ffmpeg's own
    # downmix (-ac 1) adds channels at -3 dB, which can exceed full scale.
    channels = streams[0].channels or 2
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
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
    samples = np.frombuffer(proc.stdout[:usable], dtype="<f4").astype(np.float32)
    if samples.size == 0:
        raise AudioDecodeError(f"{name}: the file contains no decodable audio.")
    frames = samples.reshape(-1, channels)
    return frames.mean(axis=1, dtype=np.float32) if mono else frames
