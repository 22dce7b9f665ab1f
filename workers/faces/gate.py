"""The consistency gate: does a scene show its character, all the way through?

Frames are sampled evenly (``samples_per_second``, at least ``min_samples``,
both ends included). In each, every face at least ``min_face_px`` tall is
embedded and the best similarity to the character's identity is the frame's
score. A scene passes when

* the character is seen in at least ``min_presence`` of the sampled frames,
  and
* no frame shows a face in the character's place that is not the character
  (a frame with faces whose best score is below the threshold).

The scene's score is its lowest frame score (the worst moment is what a
viewer notices). When a sampled frame fails after one that matched, the
frames between are searched (halving the gap each time) for the first that
fails, so a clip that switches person is reported at the switch, to the
frame.

Looking for faces everywhere in every frame is the slow part; after the
first frame the character is looked for near where it was (a region around
its last box, at full resolution), and the whole frame is searched again
when it is not found there or when what is found there is not the character.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from .base import Box, Face, FaceProvider, normalise
from .frames import FrameSource

ROI_MARGIN = 1.0  # face sizes of context around the last box
ROI_FACE_PX = 110.0  # the last face's size in the copy searched around it


@dataclass(frozen=True)
class GateSettings:
    threshold: float
    samples_per_second: float = 2.0
    min_samples: int = 3
    max_samples: int = 48
    min_presence: float = 0.5
    min_face_px: float = 40.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("the threshold is a similarity in [0, 1]")
        if self.samples_per_second <= 0 or self.min_samples < 1:
            raise ValueError("the gate needs at least one sampled frame")
        if not 0.0 <= self.min_presence <= 1.0:
            raise ValueError("min_presence is a share in [0, 1]")


@dataclass(frozen=True)
class FrameScore:
    frame: int
    time: float
    faces: int  # faces big enough to judge
    score: float | None  # best similarity to the character; None: no face
    box: Box | None = None  # that face, as fractions of the frame
    sampled: bool = True  # False: looked at to find where a change happens

    def verdict(self, threshold: float) -> str:
        if self.score is None:
            return "absent"
        return "match" if self.score >= threshold else "other"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = round(self.time, 4)
        data["score"] = None if self.score is None else round(self.score, 4)
        data["box"] = None if self.box is None else [round(v, 4) for v in self.box]
        return data


@dataclass(frozen=True)
class GateResult:
    passed: bool
    score: float | None  # lowest frame score; None when no face was seen
    presence: float  # share of sampled frames where the character is seen
    threshold: float
    frames: tuple[FrameScore, ...]
    failure: FrameScore | None = None  # the first frame showing someone else
    reason: str = ""
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "score": None if self.score is None else round(self.score, 4),
            "presence": round(self.presence, 4),
            "threshold": self.threshold,
            "frames": [f.to_dict() for f in self.frames],
            "failure": self.failure.to_dict() if self.failure else None,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
        }


def sample_indices(frame_count: int, fps: float, settings: GateSettings) -> list[int]:
    """Evenly spaced frames from the first to the last."""
    if frame_count <= 1:
        return [0]
    duration = frame_count / fps
    wanted = math.ceil(duration * settings.samples_per_second) + 1
    n = min(max(wanted, settings.min_samples), settings.max_samples, frame_count)
    return sorted({round(i * (frame_count - 1) / (n - 1)) for i in range(n)})


class _Scorer:
    """Scores frames of one source against one identity, remembering where
    the character was last seen."""

    def __init__(
        self,
        source: FrameSource,
        provider: FaceProvider,
        identity: np.ndarray,
        settings: GateSettings,
    ) -> None:
        self.source = source
        self.provider = provider
        self.identity = normalise(np.asarray(identity).ravel())
        self.settings = settings
        self.last: Face | None = None

    def score(self, index: int, *, sampled: bool = True) -> FrameScore:
        image = self.source.frame(index)
        seconds = index / self.source.fps
        faces: list[Face] = []
        best: tuple[float, Face] | None = None
        if self.last is not None:
            faces = self._near_last(image)
            best = self._best(image, faces)
        if best is None or best[0] < self.settings.threshold:
            # Not found near its last place, or someone else is there: the
            # character may be elsewhere in the frame.
            faces = self._judgeable(self.provider.detect(image))
            best = self._best(image, faces)
        if best is None:
            return FrameScore(index, seconds, 0, None, None, sampled)
        score, face = best
        self.last = face
        height, width = image.shape[:2]
        x0, y0, x1, y1 = face.box
        box = (x0 / width, y0 / height, x1 / width, y1 / height)
        return FrameScore(index, seconds, len(faces), score, box, sampled)

    def _judgeable(self, faces: list[Face]) -> list[Face]:
        return [f for f in faces if f.size >= self.settings.min_face_px]

    def _near_last(self, image: np.ndarray) -> list[Face]:
        assert self.last is not None
        height, width = image.shape[:2]
        x0, y0, x1, y1 = self.last.box
        margin = ROI_MARGIN * max(x1 - x0, y1 - y0)
        left, top = max(0, int(x0 - margin)), max(0, int(y0 - margin))
        right, bottom = min(width, int(x1 + margin)), min(height, int(y1 + margin))
        if right - left < 8 or bottom - top < 8:
            return []
        region = image[top:bottom, left:right]
        # Detectors find faces of about ROI_FACE_PX at little cost; the
        # landmarks found there are precise enough to cut the identity crop
        # from the full-resolution frame.
        scale = min(1.0, ROI_FACE_PX / max(self.last.size, 1.0))
        if scale < 1.0:
            size = (max(1, round(region.shape[1] * scale)),
                    max(1, round(region.shape[0] * scale)))  # fmt: skip
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
        found = self.provider.detect(np.ascontiguousarray(region))
        return self._judgeable([f.scaled(1.0 / scale).moved(left, top) for f in found])

    def _best(self, image: np.ndarray, faces: list[Face]) -> tuple[float, Face] | None:
        if not faces:
            return None
        rows = self.provider.embed(image, faces)
        scores = np.clip(rows @ self.identity, 0.0, 1.0)
        i = int(np.argmax(scores))
        return float(scores[i]), faces[i]


def check_frames(
    source: FrameSource,
    provider: FaceProvider,
    identity: np.ndarray,
    settings: GateSettings,
) -> GateResult:
    """Run the gate over ``source`` (see the module's docstring)."""
    started = time.perf_counter()
    scorer = _Scorer(source, provider, identity, settings)
    threshold = settings.threshold
    scores: dict[int, FrameScore] = {}
    failure: FrameScore | None = None
    last_match: int | None = None
    for index in sample_indices(source.frame_count, source.fps, settings):
        try:
            current = scorer.score(index)
        except IndexError:
            break  # the clip ended before its header said it would
        scores[index] = current
        verdict = current.verdict(threshold)
        if verdict == "match":
            last_match = index
        elif verdict == "other" and failure is None:
            failure = current
            if last_match is not None and index - last_match > 1:
                failure = _first_failure(scorer, last_match, index, scores, threshold)
    sampled = [s for s in scores.values() if s.sampled]
    if not sampled:
        raise ValueError("the clip has no frames to check")
    seen = [s for s in sampled if s.verdict(threshold) == "match"]
    presence = len(seen) / len(sampled)
    judged = [s.score for s in scores.values() if s.score is not None]
    score = min(judged) if judged else None
    reason = ""
    if failure is not None:
        reason = (
            f"frame {failure.frame} ({failure.time:.2f} s) shows someone else"
            f" (similarity {failure.score:.2f}, below {threshold:.2f})"
        )
    elif presence < settings.min_presence:
        reason = (
            f"the character is seen in {len(seen)} of {len(sampled)} sampled"
            f" frames; at least {settings.min_presence:.0%} is needed"
        )
    return GateResult(
        passed=not reason,
        score=score,
        presence=presence,
        threshold=threshold,
        frames=tuple(scores[i] for i in sorted(scores)),
        failure=failure,
        reason=reason,
        seconds=time.perf_counter() - started,
    )


def _first_failure(
    scorer: _Scorer,
    good: int,
    bad: int,
    scores: dict[int, FrameScore],
    threshold: float,
) -> FrameScore:
    """The first frame after ``good`` (which matched) up to ``bad`` (which
    shows someone else) that shows someone else, by halving the gap. A frame
    without a face in between tells nothing, and the search moves past it."""
    while bad - good > 1:
        middle = (good + bad) // 2
        probe = scorer.score(middle, sampled=False)
        scores[middle] = probe
        if probe.verdict(threshold) == "other":
            bad = middle
        else:
            good = middle
    return scores[bad]
