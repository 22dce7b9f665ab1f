"""Errors of the audio engine; each message is one sentence fit to show a user."""

from __future__ import annotations

from workers.audio.decode import AudioDecodeError


class AudioAnalysisError(ValueError):
    """The audio cannot be analyzed; the message is fit to show a user."""


__all__ = ["AudioAnalysisError", "AudioDecodeError"]
