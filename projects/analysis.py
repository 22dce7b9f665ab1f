"""The music analysis of a song, stored once per content hash and engine
version: the render pipeline, the analysis job, the project page and
``manage.py analyze_audio`` all go through here."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from workers.audio.analysis import AudioAnalysisResult, analyze_audio
from workers.audio.picture import render_waveform_svg

from .models import AudioAnalysis

# Bump when the engine's results change, so stored analyses are not reused.
AUDIO_ENGINE_VERSION = "audio-3"


def find_analysis(sha256: str) -> AudioAnalysis | None:
    return AudioAnalysis.objects.filter(
        sha256=sha256, engine_version=AUDIO_ENGINE_VERSION
    ).first()


def _store(sha256: str, result: AudioAnalysisResult, seconds: float) -> AudioAnalysis:
    fields = result.to_dict()
    peaks = result.peaks.round(4).tolist() if result.peaks is not None else []
    try:
        with transaction.atomic():
            return AudioAnalysis.objects.create(
                sha256=sha256,
                engine_version=AUDIO_ENGINE_VERSION,
                peaks=peaks,
                seconds=round(seconds, 3),
                **fields,
            )
    except IntegrityError:
        # Another task analysed the same song at the same moment.
        return AudioAnalysis.objects.get(
            sha256=sha256, engine_version=AUDIO_ENGINE_VERSION
        )


def analyse_file(
    path: Path,
    sha256: str,
    on_progress: Callable[[float], None] | None = None,
) -> AudioAnalysis:
    """The stored analysis of the song at ``path`` (whose content hash is
    ``sha256``), analysing it only if no analysis is stored yet.

    Raises the engine's AudioDecodeError / AudioAnalysisError (ValueErrors
    with a message for the user) for audio that cannot be analysed.
    """
    existing = find_analysis(sha256)
    if existing is not None:
        return existing
    started = time.monotonic()
    result = analyze_audio(
        path, max_seconds=settings.STUDIO_MAX_AUDIO_SECONDS, on_progress=on_progress
    )
    return _store(sha256, result, time.monotonic() - started)


def analysis_svg(analysis: AudioAnalysis, width: int = 1200, height: int = 240) -> str:
    """The picture of the song: waveform, beats, downbeats, sections, energy."""
    peaks = np.asarray(analysis.peaks, dtype=np.float32)
    if peaks.size == 0:
        peaks = np.zeros((2, 1), dtype=np.float32)
    return render_waveform_svg(
        peaks, analysis.to_contract(), width=width, height=height
    )
