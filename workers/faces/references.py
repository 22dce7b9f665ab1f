"""Checking one reference photo of a character: find its face, judge it,
embed it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import Box, Face, FaceProvider
from .quality import REJECT, WARN, FaceQuality, Note, is_rejected, judge, measure


@dataclass(frozen=True, eq=False)
class ReferenceCheck:
    """What a reference photo gives: the face used (None when no face was
    found), how good it is, the notes, and its embedding (None when the photo
    is rejected, which needs none)."""

    faces_found: int
    face: Face | None
    quality: FaceQuality | None
    notes: tuple[Note, ...]
    embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def accepted(self) -> bool:
        return self.face is not None and not is_rejected(list(self.notes))


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_face(faces: list[Face], hint: Box | None) -> Face:
    """The largest face, or the one that best covers ``hint`` (the face a
    grouping of the project's photos picked)."""
    if hint is None:
        return faces[0]
    return max(faces, key=lambda f: _overlap(f.box, hint))


def check_reference(
    provider: FaceProvider, image: np.ndarray, *, hint: Box | None = None
) -> ReferenceCheck:
    faces = provider.detect(image)
    if not faces:
        return ReferenceCheck(
            0, None, None, (Note("no_face", REJECT, "no face was found"),)
        )
    face = choose_face(faces, hint)
    notes: list[Note] = []
    if len(faces) > 1:
        which = "the largest" if hint is None else "the character's"
        notes.append(
            Note(
                "several_faces", WARN, f"{len(faces)} faces were found; {which} is used"
            )  # fmt: skip
        )
    quality = measure(image, face)
    notes = judge(quality) + notes
    embedding = None
    if not is_rejected(notes):
        embedding = provider.embed(image, [face])[0]
    return ReferenceCheck(len(faces), face, quality, tuple(notes), embedding)
