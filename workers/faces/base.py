"""What every face provider gives: faces with boxes, landmarks and a detector
score; a standard aligned crop; and identity embeddings.

Images are RGB ``uint8`` arrays of shape (height, width, 3). Coordinates are
pixels of the array given, x to the right and y down. Embeddings are
L2-normalised ``float32`` rows, so the cosine similarity of two faces is their
dot product; ``similarity`` clips it into [0, 1] (below 0 means "not alike"
just as much as 0 does), and each provider states the score at and above which
two faces are the same person (``threshold``, documented where the provider
is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

# The five points of the ArcFace crop (left eye, right eye, nose tip, left and
# right mouth corner, "left" as seen in the picture) for a 112x112 crop. The
# identity-conditioning models (IP-Adapter FaceID, InstantID) take faces
# aligned to this template, so every provider's crop is made with it.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
TEMPLATE_SIZE = 112


class FaceModelMissing(RuntimeError):
    """A provider's weights are not installed; the message says how to get them."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: its box, the detector's confidence (on the
    provider's own scale), and landmarks: the 68 iBUG points (dlib) or five
    points (eyes, nose tip, mouth corners; SCRFD)."""

    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        return min(self.width, self.height)

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def moved(self, dx: float, dy: float) -> Face:
        """The same face in a picture where this one's picture starts at
        (dx, dy): detection in a crop, reported in the whole frame."""
        x0, y0, x1, y1 = self.box
        points = self.landmarks + np.array([dx, dy], dtype=np.float32)
        return Face((x0 + dx, y0 + dy, x1 + dx, y1 + dy), self.score, points)

    def scaled(self, factor: float) -> Face:
        """The same face in a copy of its picture ``factor`` times the size."""
        box = tuple(v * factor for v in self.box)
        return Face(box, self.score, self.landmarks * np.float32(factor))  # type: ignore[arg-type]

    def five_points(self) -> np.ndarray:
        """Eyes, nose tip and mouth corners, whatever the landmark scheme."""
        points = np.asarray(self.landmarks, dtype=np.float32)
        if len(points) == 5:
            return points
        if len(points) == 68:
            return np.stack(
                [
                    points[36:42].mean(axis=0),  # left eye (in the picture)
                    points[42:48].mean(axis=0),  # right eye
                    points[30],  # nose tip
                    points[48],  # left mouth corner
                    points[54],  # right mouth corner
                ]
            )
        raise ValueError(f"unknown landmark scheme with {len(points)} points")


class FaceProvider(Protocol):
    """Detection, alignment and embedding behind one interface.

    ``name`` and ``version`` are stored with every embedding and are part of
    every fingerprint of a consistency check: bump ``version`` when the
    provider's outputs change. ``threshold`` is the same-person score.
    """

    name: str
    version: str
    embedding_size: int
    threshold: float

    def detect(self, image: np.ndarray) -> list[Face]:
        """Every face found, largest first."""
        ...

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """One L2-normalised row per face, shape (len(faces), embedding_size)."""
        ...


def rgb_image(image: np.ndarray) -> np.ndarray:
    """``image`` as the providers take it: a C-contiguous RGB uint8 array
    (dlib's bindings and the ONNX blobs need one)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("a face image is an RGB uint8 array (height, width, 3)")
    return np.ascontiguousarray(image)


def align(image: np.ndarray, face: Face, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The standard face crop: a similarity transform (rotation, scale,
    shift) of the five points onto the ArcFace template, ``size`` pixels
    square (112 is the template's own size; 224 or 512 scale it)."""
    points = face.five_points()
    target = ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)
    matrix, _ = cv2.estimateAffinePartial2D(points, target, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("the face's landmarks do not define an alignment")
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0)
    )


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings, clipped into [0, 1]."""
    a1, b1 = normalise(np.asarray(a).ravel()), normalise(np.asarray(b).ravel())
    return float(np.clip(np.dot(a1, b1), 0.0, 1.0))


def similarities(vectors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``similarity`` of each row of ``vectors`` to ``target``."""
    rows = normalise(np.atleast_2d(vectors))
    return np.clip(rows @ normalise(np.asarray(target).ravel()), 0.0, 1.0)
