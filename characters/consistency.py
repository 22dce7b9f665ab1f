"""Scoring scenes against their character: the consistency gate's settings
for a character, and the check itself (``workers.faces.gate``)."""

from __future__ import annotations

from django.conf import settings

from workers.faces.base import FaceModelMissing
from workers.faces.frames import FrameSource
from workers.faces.gate import GateResult, GateSettings, check_frames

from .models import Character
from .registration import face_provider, threshold_of

# Bump when the gate's rules change: cached checks are made again.
GATE_VERSION = "gate-1"


def gate_settings(character: Character) -> GateSettings:
    return GateSettings(
        threshold=threshold_of(character),
        samples_per_second=settings.STUDIO_GATE_SAMPLES_PER_SECOND,
        min_presence=settings.STUDIO_GATE_MIN_PRESENCE,
    )


def check_version(character: Character) -> list[object]:
    """What, besides the scene and the identity, decides a check's outcome."""
    s = gate_settings(character)
    return [GATE_VERSION, character.provider_version, s.threshold,
            s.samples_per_second, s.min_presence, s.min_samples,
            s.max_samples, s.min_face_px]  # fmt: skip


def check_source(character: Character, source: FrameSource) -> GateResult:
    """Run the gate over ``source`` for ``character``."""
    provider = face_provider(character.provider)
    if provider.version != character.provider_version:
        raise FaceModelMissing(
            f"{character.name} was registered with the face model"
            f" {character.provider_version}, and this worker has"
            f" {provider.version}: check the character's photos again (its"
            " page) or give this worker the same model"
        )
    return check_frames(
        source, provider, character.identity_vector(), gate_settings(character)
    )
