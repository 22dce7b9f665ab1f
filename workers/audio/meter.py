"""Meter (3 or 4 beats to the bar) and the bar phase (which beat is beat 1).

Both come from two beat-synchronous accents: the kick (low-band onset
strength, linear power) and the harmony (how much the chroma changes at each
beat). Kicks land hardest on beat 1 and chords change on bar lines, so both
repeat with the bar's period: 3 beats in a waltz, 4 in common time. Lags 3
and 9 beats are whole bars only in 3/4, lags 4 and 8 only in 4/4 (lag 12 is
both, so it is left out), and the stronger autocorrelation wins.
"""

from __future__ import annotations

import numpy as np

METERS = (3, 4)


def beat_strength(envelope: np.ndarray, beat_frames: np.ndarray) -> np.ndarray:
    """The strongest value within a frame of each beat (beat times are only
    frame-accurate)."""
    padded = np.pad(envelope, 1)
    idx = np.clip(beat_frames, 0, len(envelope) - 1)
    return np.maximum.reduce([padded[idx], padded[idx + 1], padded[idx + 2]])


def chord_change(seg_chroma: np.ndarray) -> np.ndarray:
    """How much the harmony changes at each beat (0 same, 1 unrelated).

    ``seg_chroma`` has one column per beat: the chroma from that beat to the
    next. The first beat has nothing before it and gets 0.
    """
    unit = seg_chroma / (np.linalg.norm(seg_chroma, axis=0, keepdims=True) + 1e-9)
    change = 1.0 - (unit[:, 1:] * unit[:, :-1]).sum(axis=0)
    return np.concatenate([[0.0], change])


def _autocorr(x: np.ndarray, lag: int) -> float:
    if x.size <= lag + 2:
        return 0.0
    z = (x - x.mean()) / (x.std() + 1e-9)
    return float(np.mean(z[lag:] * z[:-lag]))


def detect_meter(kick: np.ndarray, change: np.ndarray) -> tuple[int, float]:
    """Beats per bar (3 or 4) and a confidence in [0, 1]."""
    scores = {}
    for m in METERS:
        lags = (3, 9) if m == 3 else (4, 8)
        scores[m] = sum(_autocorr(x, lag) for x in (kick, change) for lag in lags)
    meter = max(scores, key=lambda m: scores[m])
    other = scores[7 - meter]
    margin = scores[meter] - other
    return meter, float(np.clip(margin / 2.0, 0.0, 1.0))


def bar_phase(kick: np.ndarray, change: np.ndarray, meter: int) -> int:
    """Index of the first downbeat among the beats.

    Kick drums land hardest on beat 1, so the phase whose beats carry the most
    low-band onset energy wins; chords usually change there too, which settles
    songs whose kicks on 1 and 3 are equally strong.
    """
    n = min(len(kick), len(change))
    if n < 2 * meter or meter < 2:
        return 0

    def by_phase(values: np.ndarray) -> np.ndarray:
        means = np.array([values[p:n:meter].mean() for p in range(meter)])
        return means / (means.mean() + 1e-9)

    return int(np.argmax(by_phase(kick) + 0.5 * by_phase(change)))


def segment_means(
    features: np.ndarray, hop: int, starts: np.ndarray, total: int
) -> np.ndarray:
    """Mean of ``features`` (one column per ``hop`` samples) over each span from
    one start (in samples) to the next, the last running to ``total``."""
    n = features.shape[1]
    bounds = np.clip(np.round(np.append(starts, total) / hop).astype(np.int64), 0, n)
    lo, hi = bounds[:-1], np.maximum(bounds[1:], bounds[:-1] + 1)
    hi = np.minimum(hi, n)
    lo = np.minimum(lo, hi - 1)
    csum = np.concatenate(
        [np.zeros((features.shape[0], 1)), np.cumsum(features, axis=1)], axis=1
    )
    return (csum[:, hi] - csum[:, lo]) / (hi - lo)
