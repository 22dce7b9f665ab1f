"""A character's identity: the normalised mean of the embeddings of its
accepted reference photos, with their spread; and the grouping of faces into
people (which references do not belong, whose face a project is about).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .base import normalise


@dataclass(frozen=True, eq=False)
class Identity:
    """``vector``: unit length. ``spread``: the mean of 1 - similarity of
    each reference to ``vector`` (0 when every photo embeds alike);
    ``spread_max``: the largest."""

    vector: np.ndarray = field(repr=False)  # biometric: never in a log line
    count: int
    spread: float
    spread_max: float

    def to_bytes(self) -> bytes:
        return self.vector.astype("<f4").tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def build_identity(embeddings: np.ndarray) -> Identity:
    rows = normalise(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)))
    if len(rows) == 0:
        raise ValueError("an identity needs at least one accepted reference")
    vector = normalise(rows.mean(axis=0))
    distances = 1.0 - np.clip(rows @ vector, -1.0, 1.0)
    return Identity(
        vector=vector,
        count=len(rows),
        spread=float(distances.mean()),
        spread_max=float(distances.max()),
    )


def group_people(embeddings: np.ndarray, threshold: float) -> list[list[int]]:
    """Indices of ``embeddings`` grouped by person, largest group first (ties:
    the group holding the earliest index). Each face joins the group whose
    running mean it is most like, if at least ``threshold``, else starts one;
    faces are taken in order, so earlier photos set the groups."""
    rows = normalise(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)))
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for i, row in enumerate(rows):
        if groups:
            scores = [float(row @ normalise(total)) for total in sums]
            best = int(np.argmax(scores))
            if scores[best] >= threshold:
                groups[best].append(i)
                sums[best] = sums[best] + row
                continue
        groups.append([i])
        sums.append(row.copy())
    groups.sort(key=lambda g: (-len(g), g[0]))
    return groups


def outliers(embeddings: np.ndarray, threshold: float) -> list[int]:
    """References that are not the character: every face outside the
    largest group of ``group_people``."""
    groups = group_people(embeddings, threshold)
    if not groups:
        return []
    return sorted(i for group in groups[1:] for i in group)


def best_match(
    embeddings: Sequence[np.ndarray] | np.ndarray, identity: np.ndarray
) -> tuple[int, float]:
    """(index, similarity) of the row most like ``identity``; (-1, 0.0) for none."""
    rows = np.asarray(embeddings, dtype=np.float32)
    if rows.size == 0:
        return -1, 0.0
    scores = np.clip(normalise(np.atleast_2d(rows)) @ normalise(identity), 0.0, 1.0)
    best = int(np.argmax(scores))
    return best, float(scores[best])
