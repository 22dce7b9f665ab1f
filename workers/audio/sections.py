"""Song sections: where they change, and which are intro, verse, chorus, bridge
and outro.

Everything is measured per bar, so boundaries land on downbeats. Each bar gets
its harmony (mean chroma), its timbre (mean MFCC, standardized over the song)
and its loudness. A bar-by-bar self-similarity matrix combines the three, and a
checkerboard kernel slid along its diagonal (Foote's novelty) peaks where the
bars before a point resemble each other and the bars after it, but not one
another. Peaks above a threshold become boundaries, so the number of sections
is found, not fixed; a song with no clear change is one section.

Labels come from repetition and energy: segments are grouped by how well their
bars match bar for bar (harmony and timbre); the repeated group that is
loudest is the chorus; a quieter first segment is the intro and a quieter last
one the outro; a segment heard once, in the second half, is the bridge; the
rest are verses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.audio.loudness import KPower
from workers.audio.meter import segment_means

KERNEL_BARS = 4  # half-width of the checkerboard kernel
MIN_BARS = 2  # shortest section
NOVELTY_FLOOR = 0.08  # a boundary needs at least this much novelty...
NOVELTY_SHARE = 0.45  # ...and this share of the song's strongest boundary
SAME_MATERIAL = 0.85  # segments whose bars match this well are repeats
QUIETER_DB = 1.5  # how much quieter than the song an intro or outro is
REPEAT_BONUS_DB = 2.0  # what repetition is worth, in loudness, to a chorus
LEVEL_DB = 6.0  # loudness difference at which bars are 1/e alike
REPEAT_LEVEL_DB = 3.0  # the same, when asking whether a part repeats


@dataclass
class BarFeatures:
    starts: np.ndarray  # sample index of each bar's start (the first is 0)
    chroma: np.ndarray  # (12, bars), unit length
    timbre: np.ndarray  # (coefficients, bars), standardized
    loudness: np.ndarray  # (bars,) dB


def bar_features(
    *,
    bar_starts: np.ndarray,
    total: int,
    sample_rate: int,
    chroma: np.ndarray,
    chroma_hop: int,
    mfcc: np.ndarray,
    mfcc_hop: int,
    power: KPower,
) -> BarFeatures:
    """Per-bar features; ``bar_starts`` and ``total`` in samples at
    ``sample_rate``, the hops in those samples too."""
    starts = np.asarray(bar_starts, dtype=np.int64).copy()
    starts[0] = 0  # a pickup before the first downbeat joins bar 1
    c = segment_means(chroma, chroma_hop, starts, total)
    c = c / (np.linalg.norm(c, axis=0, keepdims=True) + 1e-9)
    m = segment_means(mfcc, mfcc_hop, starts, total)
    m = (m - m.mean(axis=1, keepdims=True)) / (m.std(axis=1, keepdims=True) + 1e-9)
    # The loudness runs at the file's own rate.
    scale = power.sample_rate / sample_rate
    edges = np.round(np.append(starts, total) * scale).astype(np.int64)
    loud = 10 * np.log10(np.maximum(power.means(edges[:-1], edges[1:]), 1e-12))
    return BarFeatures(starts, c, m, loud)


def _similarity(bars: BarFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Bar-by-bar similarity for boundaries (harmony, timbre and loudness
    alike) and for repetition (mostly harmony), each in [0, 1]."""
    harmony = np.clip(bars.chroma.T @ bars.chroma, 0.0, 1.0)
    m = bars.timbre.T
    dist = np.sqrt(np.maximum(((m[:, None, :] - m[None, :, :]) ** 2).mean(axis=2), 0))
    scale = float(np.median(dist[np.triu_indices(len(m), 1)])) if len(m) > 1 else 1.0
    timbre = np.exp(-((dist / (scale + 1e-9)) ** 2))
    gap = np.abs(bars.loudness[:, None] - bars.loudness[None, :])
    boundary = (harmony + timbre + np.exp(-gap / LEVEL_DB)) / 3.0
    # For repetition loudness is judged more strictly: a part played on the
    # same chords but a lot louder (a chorus over the verse's chords) is
    # another part.
    repetition = 0.5 * harmony + 0.3 * timbre + 0.2 * np.exp(-gap / REPEAT_LEVEL_DB)
    return boundary, repetition


def novelty(similarity: np.ndarray, half: int = KERNEL_BARS) -> np.ndarray:
    """Foote novelty at each bar line (index b: between bars b-1 and b).

    Within-block minus across-block mean similarity, with the kernel cut
    short near the song's ends rather than padded. Bar lines closer than
    MIN_BARS to either end get 0.
    """
    n = len(similarity)
    out = np.zeros(n)
    # Closer to an end than MIN_BARS a window of one bar is trivially
    # "within-similar": no boundary is looked for there.
    for b in range(MIN_BARS, n - MIN_BARS + 1):
        left = slice(max(b - half, 0), b)
        right = slice(b, min(b + half, n))
        within = (similarity[left, left].mean() + similarity[right, right].mean()) / 2
        out[b] = within - similarity[left, right].mean()
    return out


def pick_boundaries(curve: np.ndarray) -> list[int]:
    """Bar lines where novelty peaks clearly: local maxima over MIN_BARS each
    side, above both the floor and a share of the strongest peak."""
    n = len(curve)
    if n < 2 * MIN_BARS:
        return []
    candidates = []
    for b in range(MIN_BARS, n - MIN_BARS + 1):
        lo, hi = max(b - MIN_BARS, 1), min(b + MIN_BARS + 1, n)
        if curve[b] >= curve[lo:hi].max():
            candidates.append(b)
    if not candidates:
        return []
    top = max(curve[b] for b in candidates)
    threshold = max(NOVELTY_FLOOR, NOVELTY_SHARE * top)
    chosen: list[int] = []
    for b in sorted(candidates, key=lambda b: -curve[b]):
        if curve[b] < threshold:
            break
        if all(abs(b - c) >= MIN_BARS for c in chosen):
            chosen.append(b)
    return sorted(chosen)


def _segment_similarity(
    rep: np.ndarray, a: tuple[int, int], b: tuple[int, int]
) -> float:
    """How well segment ``a``'s bars match ``b``'s, bar for bar, at the best
    alignment of the shorter inside the longer."""
    (a0, a1), (b0, b1) = a, b
    la, lb = a1 - a0, b1 - b0
    if la > lb:
        (a0, a1), (b0, b1), la, lb = (b0, b1), (a0, a1), lb, la
    best = 0.0
    for off in range(lb - la + 1):
        idx = np.arange(la)
        best = max(best, float(rep[a0 + idx, b0 + off + idx].mean()))
    return best


def label_segments(
    spans: list[tuple[int, int]], rep: np.ndarray, loudness: np.ndarray
) -> list[str]:
    """intro / verse / chorus / bridge / outro for each (first bar, end bar)."""
    n = len(spans)
    if n == 1:
        return ["verse"]
    # Repetition: each segment joins the group it matches best, if well enough.
    groups: list[list[int]] = []
    for i, span in enumerate(spans):
        scores = [
            min(_segment_similarity(rep, span, spans[j]) for j in g) for g in groups
        ]
        if scores and max(scores) >= SAME_MATERIAL:
            groups[int(np.argmax(scores))].append(i)
        else:
            groups.append([i])
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    level = np.array([loudness[a:b].mean() for a, b in spans])
    song = float(np.median(level))

    # The chorus: the loudest material, where being repeated counts for
    # REPEAT_BONUS_DB, so a chorus heard twice beats a louder one-off bridge
    # but a verse heard twice does not beat a much louder chorus heard once.
    def weight(g: int) -> float:
        bonus = REPEAT_BONUS_DB if len(groups[g]) > 1 else 0.0
        return float(level[groups[g]].mean()) + bonus

    loudest = max(range(len(groups)), key=weight)
    chorus: int | None = loudest
    if n < 3 or (
        len(groups[loudest]) == 1 and level[groups[loudest]].max() < song + QUIETER_DB
    ):
        chorus = None  # nothing stands out as a chorus

    labels = ["verse"] * n
    for i in range(n):
        if group_of[i] == chorus:
            labels[i] = "chorus"
    quiet = song - QUIETER_DB
    first_alone = len(groups[group_of[0]]) == 1
    if level[0] < quiet or (
        labels[0] != "chorus" and first_alone and level[0] < level[1] - QUIETER_DB
    ):
        labels[0] = "intro"
    if n >= 3 and (
        level[-1] < quiet
        or (labels[-1] != "chorus" and len(groups[group_of[n - 1]]) == 1)
    ):
        labels[-1] = "outro"
    total = spans[-1][1]
    for i in range(1, n - 1):
        alone = len(groups[group_of[i]]) == 1
        if alone and labels[i] == "verse" and spans[i][0] >= total / 2:
            labels[i] = "bridge"
    return labels


def find_sections(
    bars: BarFeatures, bar_times: np.ndarray, duration: float
) -> list[dict]:
    """Sections as [{"start", "end", "label"}], tiling 0..duration."""
    n = len(bars.starts)
    if n < 2 * MIN_BARS:
        return [{"start": 0.0, "end": round(duration, 4), "label": "verse"}]
    boundary_sim, rep = _similarity(bars)
    cuts = pick_boundaries(novelty(boundary_sim))
    edges = [0, *cuts, n]
    spans = list(zip(edges[:-1], edges[1:], strict=True))
    labels = label_segments(spans, rep, bars.loudness)
    out = []
    for (a, b), label in zip(spans, labels, strict=True):
        start = 0.0 if a == 0 else float(bar_times[a])
        end = duration if b == n else float(bar_times[b])
        out.append({"start": round(start, 4), "end": round(end, 4), "label": label})
    return out
