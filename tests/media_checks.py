"""Measuring rendered videos the way a viewer would (decode the frames and find
where the picture changes abruptly), and writing the test signals they play."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from workers.audio.synth import write_pcm


def frame_differences(video: Path, size: tuple[int, int] = (64, 36)) -> np.ndarray:
    """Mean absolute difference between each frame and the one before it,
    measured on small grey thumbnails (index i compares frame i with i-1)."""
    diffs: list[float] = [0.0]
    previous: np.ndarray | None = None
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            grey = frame.reformat(
                width=size[0], height=size[1], format="gray"
            ).to_ndarray()
            grey = grey.astype(np.float32)
            if previous is not None:
                diffs.append(float(np.abs(grey - previous).mean()))
            previous = grey
    return np.asarray(diffs)


def detect_cuts(video: Path, threshold: float = 25.0) -> list[int]:
    """Frame numbers where a new shot starts: a jump far above the slow drift
    of a camera move."""
    diffs = frame_differences(video)
    return [int(i) for i in np.flatnonzero(diffs > threshold)]


def nearest_distance(value: float, candidates: list[float]) -> float:
    return min(abs(value - c) for c in candidates)


def write_stereo_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    """A test signal as a 16-bit stereo WAV: clipped to [-1, 1], a mono
    signal on both channels."""
    data = np.clip(x, -1, 1)
    if data.ndim == 1:
        data = np.stack([data, data], axis=1)
    return write_pcm(path, data, rate)
