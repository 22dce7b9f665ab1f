"""Compatibility shim: the beat analysis grew into ``workers.audio.analysis``.

``analyze_beats`` is ``analyze_audio`` under its old name; its result carries
every attribute the old ``BeatAnalysis`` had (duration, bpm, bpm_confidence,
beats, downbeats, onsets) and more. Import from ``workers.audio.analysis`` in
new code.
"""

from __future__ import annotations

from pathlib import Path

from workers.audio.analysis import AudioAnalysisResult, analyze_audio
from workers.audio.errors import AudioAnalysisError

BeatAnalysis = AudioAnalysisResult

__all__ = ["AudioAnalysisError", "BeatAnalysis", "analyze_beats"]


def analyze_beats(
    path: str | Path,
    *,
    sample_rate: int = 22050,
    max_seconds: float | None = None,
) -> AudioAnalysisResult:
    """``analyze_audio(path, ...)``: see there. A file longer than
    ``max_seconds`` is now refused rather than cut short."""
    return analyze_audio(path, sample_rate=sample_rate, max_seconds=max_seconds)
