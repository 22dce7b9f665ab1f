"""A picture of the song: waveform, sections, energy, beats and downbeats.

    render_waveform_svg(peaks_or_samples, analysis) -> str

The SVG is self-contained (no scripts, no external references, every text
escaped) and deterministic, so the same analysis always draws the same bytes.
Section bands sit behind a min/max waveform (one column per pixel), the
loudness curve runs over it, thin ticks mark beats, heavier ticks downbeats,
and a time axis runs along the bottom.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from scipy.ndimage import uniform_filter1d

SECTION_COLOURS = {
    "intro": "#38bdf8",
    "verse": "#34d399",
    "chorus": "#f472b6",
    "bridge": "#a78bfa",
    "outro": "#fb923c",
}
OTHER_COLOUR = "#94a3b8"
BACKGROUND = "#0f172a"
WAVE = "#cbd5e1"
ENERGY = "#fbbf24"
TEXT = "#e2e8f0"
ENERGY_RANGE_DB = 30.0  # the loudness curve spans this far below its peak
ENERGY_SMOOTH_SECONDS = 0.5
MARGIN, TOP, BOTTOM = 8, 22, 20  # px
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)


def _get(analysis: Any, key: str, default: Any = None) -> Any:
    if isinstance(analysis, Mapping):
        return analysis.get(key, default)
    return getattr(analysis, key, default)


def _num(x: float) -> str:
    text = f"{x:.1f}"
    return "0.0" if text == "-0.0" else text


def _columns(waveform: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Min and max per pixel column of samples (1-D) or of a (2, n) min/max
    envelope."""
    data = np.asarray(waveform, dtype=np.float64)
    if data.ndim == 1:
        lo_src = hi_src = data
    elif data.ndim == 2 and data.shape[0] == 2:
        lo_src, hi_src = data[0], data[1]
    else:
        raise ValueError("waveform must be samples (n,) or a (2, n) min/max envelope")
    n = len(lo_src)
    if n == 0:
        return np.zeros(columns), np.zeros(columns)
    if n < columns:  # stretch a coarse envelope
        idx = np.minimum((np.arange(columns) * n) // columns, n - 1)
        return lo_src[idx], hi_src[idx]
    edges = (np.arange(columns) * n) // columns
    return np.minimum.reduceat(lo_src, edges), np.maximum.reduceat(hi_src, edges)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def render_waveform_svg(
    waveform: np.ndarray,
    analysis: Any,
    *,
    width: int = 1200,
    height: int = 240,
) -> str:
    """The song as an SVG document.

    ``waveform``: the song's samples (mono, spanning the whole song) or a
    (2, n) min/max envelope such as ``AudioAnalysisResult.peaks``.
    ``analysis``: an ``AudioAnalysisResult`` or its ``to_dict()``.
    """
    if width < 100 or height < 80:
        raise ValueError("the picture needs at least 100 x 80 pixels")
    duration = float(_get(analysis, "duration", 0.0)) or 1.0
    x0, x1 = MARGIN, width - MARGIN
    y0, y1 = TOP, height - BOTTOM
    mid, half = (y0 + y1) / 2, (y1 - y0) / 2
    span = x1 - x0

    def x_of(t: float) -> float:
        return x0 + span * min(max(t / duration, 0.0), 1.0)

    bpm = float(_get(analysis, "bpm", 0.0))
    meter = int(_get(analysis, "meter", 4) or 4)
    lufs = _get(analysis, "loudness_lufs")
    title = f"{bpm:.1f} BPM \u00b7 {meter}/4"
    if lufs is not None:
        title += f" \u00b7 {float(lufs):.1f} LUFS"
    title += f" \u00b7 {_clock(duration)}"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label={quoteattr(title)}>',
        f"<title>{escape(title)}</title>",
        f'<rect class="background" x="0" y="0" width="{width}" height="{height}" '
        f'fill="{BACKGROUND}"/>',
    ]

    sections = list(_get(analysis, "sections", []) or [])
    out.append('<g class="sections">')
    labels = []
    for section in sections:
        label = str(section.get("label", ""))
        colour = SECTION_COLOURS.get(label, OTHER_COLOUR)
        a, b = x_of(float(section["start"])), x_of(float(section["end"]))
        out.append(
            f'<rect x="{_num(a)}" y="{y0}" width="{_num(max(b - a, 0.0))}" '
            f'height="{y1 - y0}" fill="{colour}" fill-opacity="0.16" '
            f"data-label={quoteattr(label)}/>"
        )
        labels.append(
            f'<text x="{_num(a + 4)}" y="{y0 + 13}" fill="{colour}">'
            f"{escape(label)}</text>"
        )
    out.append("</g>")

    lo, hi = _columns(waveform, int(span))
    peak = float(max(np.abs(lo).max(), np.abs(hi).max(), 1e-9))
    xs = x0 + np.arange(len(hi)) + 0.5
    top = " ".join(
        f"{_num(x)},{_num(mid - half * v / peak)}" for x, v in zip(xs, hi, strict=True)
    )
    bottom = " ".join(
        f"{_num(x)},{_num(mid - half * v / peak)}"
        for x, v in zip(xs[::-1], lo[::-1], strict=True)
    )
    out.append(
        f'<path class="waveform" d="M{top} L{bottom} Z" fill="{WAVE}" '
        'fill-opacity="0.55"/>'
    )

    energy = _get(analysis, "energy", {}) or {}
    values = np.asarray(energy.get("values", []), dtype=np.float64)
    hop = float(energy.get("hop_s", 0.0) or 0.0)
    if values.size > 1 and hop > 0:
        # Half a second of smoothing shows the song's shape, not every kick.
        width_hops = max(int(round(ENERGY_SMOOTH_SECONDS / hop)), 1)
        values = uniform_filter1d(values, size=width_hops, mode="nearest")
        cols = min(values.size, int(span))
        edges = (np.arange(cols) * values.size) // cols
        level = np.add.reduceat(values, edges) / np.diff(np.append(edges, values.size))
        t = (edges + np.diff(np.append(edges, values.size)) / 2) * hop
        ceiling = float(level.max())
        frac = np.clip((level - (ceiling - ENERGY_RANGE_DB)) / ENERGY_RANGE_DB, 0, 1)
        points = " ".join(
            f"{_num(x_of(float(ti)))},{_num(y1 - (y1 - y0) * float(f))}"
            for ti, f in zip(t, frac, strict=True)
        )
        out.append(
            f'<path class="energy" d="M{points}" fill="none" stroke="{ENERGY}" '
            'stroke-width="1.5" stroke-linejoin="round"/>'
        )

    out.append(
        f'<g class="beats" stroke="{TEXT}" stroke-opacity="0.35" stroke-width="1">'
    )
    for beat in _get(analysis, "beats", []) or []:
        x = _num(x_of(float(beat)))
        out.append(f'<line x1="{x}" y1="{y1 - 6}" x2="{x}" y2="{y1}"/>')
    out.append("</g>")
    out.append(
        f'<g class="downbeats" stroke="{TEXT}" stroke-opacity="0.8" stroke-width="2">'
    )
    for beat in _get(analysis, "downbeats", []) or []:
        x = _num(x_of(float(beat)))
        out.append(f'<line x1="{x}" y1="{y1 - 12}" x2="{x}" y2="{y1}"/>')
    out.append("</g>")

    out.append(
        f'<g class="labels" font-family="sans-serif" font-size="11" '
        f'stroke="{BACKGROUND}" stroke-width="3" paint-order="stroke">'
        f'<text x="{MARGIN}" y="{y0 - 7}" fill="{TEXT}">{escape(title)}</text>'
    )
    out += labels
    out.append("</g>")

    step = next((s for s in _STEPS if duration / s <= 12), _STEPS[-1])
    out.append(
        f'<g class="axis" font-family="sans-serif" font-size="10" fill="{TEXT}" '
        f'stroke="{TEXT}">'
        f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke-opacity="0.5"/>'
    )
    for i in range(int(duration // step) + 1):
        t = i * step
        x = _num(x_of(t))
        anchor = "start" if i == 0 else "middle"
        out.append(
            f'<line x1="{x}" y1="{y1}" x2="{x}" y2="{y1 + 4}" stroke-opacity="0.5"/>'
            f'<text x="{x}" y="{height - 5}" stroke="none" text-anchor="{anchor}">'
            f"{_clock(t)}</text>"
        )
    out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
