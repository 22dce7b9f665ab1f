"""Loudness per ITU-R BS.1770-4: K-weighting, integrated loudness (LUFS) with
its absolute and relative gates, and a loudness curve for the song's picture.

The K-weighting filters are derived for any sample rate from the analogue
prototypes (the form libebur128 and pyloudnorm use); at 48 kHz they give the
standard's coefficients. The analysis measures the file at its own sample
rate (capped at 48 kHz), all channels, not the 22.05 kHz mono it analyses
rhythm from: at 22.05 kHz the band above 11 kHz, which K-weighting lifts, is
gone, and bright mixes read 1-1.5 LU low.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import sosfilt

ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely gated loudness
BLOCK_SECONDS = 0.4
BLOCK_STEP = 0.1  # 75% overlap
OFFSET = -0.691  # makes a 997 Hz sine at 0 dBFS in one channel read -3.01 LUFS


def k_weighting(sample_rate: int) -> np.ndarray:
    """Second-order sections of the K-weighting (shelf, then RLB high-pass)."""
    # Stage 1: the head's acoustic effect, a +4 dB shelf above ~1.7 kHz.
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = np.tan(np.pi * f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2 * (k * k - 1) / a0,
        (1 - k / q + k * k) / a0,
    ]
    # Stage 2: the revised low-frequency B-curve, a high-pass near 38 Hz.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = np.tan(np.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 weights: 1 for front channels, 1.41 for surrounds, 0 for LFE
    (5.1 in the usual L R C LFE Ls Rs order)."""
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


class KPower:
    """Channel-weighted sum of the K-weighted squares (the quantity BS.1770
    averages), kept as a running sum so that any span's mean is two lookups:
    the integrated loudness, the loudness curve and each bar's loudness all
    come from one pass over the samples."""

    def __init__(self, frames: np.ndarray, sample_rate: int) -> None:
        x = frames[:, None] if frames.ndim == 1 else frames
        # Filtering in single precision is three times faster and, at these
        # levels, within 0.001 LU of double; the running sum is in double.
        sos = k_weighting(sample_rate).astype(np.float32)
        filtered = sosfilt(sos, np.asarray(x, dtype=np.float32), axis=0)
        weights = channel_weights(x.shape[1]).astype(np.float32)
        power = np.square(filtered) @ weights
        self.sample_rate = sample_rate
        self.length = len(power)
        self._sums = np.concatenate([[0.0], np.cumsum(power, dtype=np.float64)])

    def means(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Mean power over each span [lo, hi) of samples, clipped to the audio."""
        lo = np.clip(np.asarray(lo, dtype=np.int64), 0, self.length)
        hi = np.clip(np.asarray(hi, dtype=np.int64), 0, self.length)
        width = np.maximum(hi - lo, 1)
        return np.asarray((self._sums[np.maximum(hi, lo)] - self._sums[lo]) / width)


def _to_lufs(mean_power: np.ndarray | float) -> np.ndarray:
    return OFFSET + 10 * np.log10(np.maximum(mean_power, 1e-20))


def integrated_loudness(power: KPower) -> float:
    """Gated integrated loudness in LUFS.

    Audio shorter than one block is measured as one block; audio that no
    block lifts above the absolute gate reads the gate, -70 LUFS.
    """
    rate = power.sample_rate
    block = int(round(BLOCK_SECONDS * rate))
    step = int(round(BLOCK_STEP * rate))
    if power.length <= block:
        means = power.means(np.array([0]), np.array([power.length]))
    else:
        starts = np.arange(0, power.length - block + 1, step)
        means = power.means(starts, starts + block)
    levels = _to_lufs(means)
    above = means[levels > ABSOLUTE_GATE]
    if above.size == 0:
        return ABSOLUTE_GATE
    relative = float(_to_lufs(above.mean())) + RELATIVE_GATE
    gated = means[(levels > ABSOLUTE_GATE) & (levels > relative)]
    return float(_to_lufs(gated.mean())) if gated.size else ABSOLUTE_GATE


def loudness_curve(power: KPower, hop_seconds: float, duration: float) -> list[float]:
    """Loudness (LUFS, floored at the absolute gate) of a window two hops
    long centred on each multiple of ``hop_seconds`` from 0 to ``duration``."""
    rate = power.sample_rate
    count = int(np.floor(duration / hop_seconds + 1e-9)) + 1
    centres = np.round(np.arange(count) * hop_seconds * rate).astype(np.int64)
    half = max(int(round(hop_seconds * rate)), 1)
    levels = np.maximum(_to_lufs(power.means(centres - half, centres + half)),
                        ABSOLUTE_GATE)  # fmt: skip
    return [round(float(v), 1) for v in levels]
