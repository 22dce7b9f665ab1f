"""Choose a good thumbnail frame for a finished video.

``choose_thumbnail`` decodes a handful of evenly spaced frames (it seeks to each
time and decodes only up to the next frame there, never the whole video),
scores each on a small copy and writes the best one as a JPEG.

Scoring (every term lies in [0, 1]; the analysis copy is at most 320 px wide)::

    score = 0.40 * S + 0.25 * E + 0.35 * C  (+ 0.30 * F when a face detector is given)

* S, sharpness: variance ``v`` of the Laplacian of the grey copy (0-255 scale),
  normalised as ``v / (v + 150)``; a blurred frame sits near 0, a crisp one
  near 1.
* E, exposure: ``(1 - ((m - 0.5) / 0.5) ** 2) * (1 - clipped)`` where ``m`` is
  the mean luma in [0, 1] and ``clipped`` the fraction of pixels at or below
  4/255 or at or above 251/255. Mid-grey with nothing clipped scores 1; a black
  or white frame scores 0.
* C, colourfulness: the Hasler-Suesstrunk metric ``M = sqrt(sd_rg^2 + sd_yb^2)
  + 0.3 * sqrt(mean_rg^2 + mean_yb^2)`` (rg = R - G, yb = (R + G) / 2 - B),
  normalised as ``min(M / 100, 1)`` (their "extremely colourful" is about 82).
* F, face: for the best box ``size * (0.5 + 0.5 * position)``; ``size`` is 1
  for a box covering 3-40 % of the frame and falls off linearly outside that,
  ``position`` is 1 at the upper centre (x = 0.5, y = 0.38 of the frame) and
  falls to 0 at a distance of 0.6 frame.

A frame whose exposure is below 0.05 (nearly black, white or flat) is not
usable at all, nor is one within 0.25 s of a time in ``avoid`` (cuts and
transitions, where a frame may be a blend) or within 0.2 s of either end.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

# Weights of the score terms (documented in the module docstring).
W_SHARPNESS = 0.40
W_EXPOSURE = 0.25
W_COLOURFULNESS = 0.35
W_FACE = 0.30

SHARPNESS_HALF = 150.0  # Laplacian variance that scores 0.5
COLOURFULNESS_FULL = 100.0  # Hasler-Suesstrunk M that scores 1
CLIP_LOW = 4
CLIP_HIGH = 251
MIN_EXPOSURE = 0.05  # below this a frame is not usable

AVOID_MARGIN = 0.25  # seconds either side of a cut or transition
EDGE_MARGIN = 0.2  # seconds from the start and the end
ANALYSIS_WIDTH = 320
FACE_TARGET = (0.5, 0.38)  # upper centre, as fractions of width and height
FACE_MIN_AREA = 0.03
FACE_MAX_AREA = 0.40
_MAX_DECODE_PER_SEEK = 600  # frames decoded after one seek before giving up

FaceDetector = Callable[[np.ndarray], list[tuple[int, int, int, int]]]


@functools.lru_cache(maxsize=1)
def _haar() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    )


def haar_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Frontal faces found by the Haar cascade that ships with OpenCV.

    A quick, dependency-free detector for choosing thumbnails on the small
    analysis frame; the character engine's detector is the accurate one.
    """
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    side = max(12, min(grey.shape) // 10)
    found = _haar().detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
    )
    return [tuple(int(v) for v in box) for box in found]  # type: ignore[misc]


@dataclass(frozen=True)
class ThumbnailChoice:
    time: float  # seconds from the start of the video
    score: float
    sharpness: float
    exposure: float
    colourfulness: float
    face: float  # 0.0 when no face detector was given


@dataclass(frozen=True)
class _Scores:
    score: float
    sharpness: float
    exposure: float
    colourfulness: float
    face: float


def sharpness_score(grey: np.ndarray) -> float:
    """Normalised variance of the Laplacian of a grey image on the 0-255 scale."""
    lap = ndimage.laplace(grey.astype(np.float64))
    v = float(lap.var())
    return v / (v + SHARPNESS_HALF)


def exposure_score(grey: np.ndarray) -> float:
    """1 for a mid-grey mean with nothing clipped, 0 for black or white."""
    m = float(grey.mean()) / 255.0
    clipped = float(((grey <= CLIP_LOW) | (grey >= CLIP_HIGH)).mean())
    return max(0.0, 1.0 - ((m - 0.5) / 0.5) ** 2) * (1.0 - clipped)


def colourfulness_score(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness, scaled into [0, 1]."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg = r - g
    yb = 0.5 * (r + g) - b
    m = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(
        float(rg.mean()), float(yb.mean())
    )
    return min(m / COLOURFULNESS_FULL, 1.0)


def face_score(
    boxes: Sequence[tuple[int, int, int, int]], width: int, height: int
) -> float:
    """Best face box (x, y, w, h in pixels of the analysed image): a face of
    reasonable size near the upper centre scores highest."""
    best = 0.0
    for x, y, w, h in boxes:
        if w <= 0 or h <= 0:
            continue
        area = (w * h) / float(width * height)
        if area < FACE_MIN_AREA:
            size = area / FACE_MIN_AREA
        elif area <= FACE_MAX_AREA:
            size = 1.0
        else:
            size = max(0.0, 1.0 - (area - FACE_MAX_AREA) / (1.0 - FACE_MAX_AREA))
        cx = (x + w / 2) / width
        cy = (y + h / 2) / height
        distance = math.hypot(cx - FACE_TARGET[0], cy - FACE_TARGET[1])
        position = max(0.0, 1.0 - distance / 0.6)
        best = max(best, size * (0.5 + 0.5 * position))
    return min(best, 1.0)


def score_frame(rgb: np.ndarray, face_boxes: FaceDetector | None = None) -> _Scores:
    """Score one small RGB frame (uint8, H x W x 3)."""
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    s = sharpness_score(grey)
    e = exposure_score(grey)
    c = colourfulness_score(rgb)
    f = 0.0
    if face_boxes is not None:
        f = face_score(face_boxes(rgb), rgb.shape[1], rgb.shape[0])
    total = W_SHARPNESS * s + W_EXPOSURE * e + W_COLOURFULNESS * c + W_FACE * f
    return _Scores(total, s, e, c, f)


def _even(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def _near(t: float, times: Sequence[float], margin: float) -> bool:
    return any(abs(t - a) < margin for a in times)


def _write_jpeg(image: Image.Image, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{out.stem}.", suffix=".part.jpg", dir=out.parent
    )
    os.close(fd)
    temp = Path(name)
    try:
        image.save(temp, format="JPEG", quality=90)
        os.replace(temp, out)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def choose_thumbnail(
    video: Path,
    out: Path,
    *,
    width: int = 1280,
    candidates: int = 24,
    avoid: Sequence[float] = (),
    face_boxes: FaceDetector | None = None,
) -> ThumbnailChoice:
    """Pick the best of ``candidates`` evenly spaced frames of ``video`` and
    write it to ``out`` as a JPEG ``width`` pixels wide (aspect kept, even
    height), atomically.

    ``avoid`` lists times (seconds) of cuts and transitions; frames within
    0.25 s of any are skipped, as are frames within 0.2 s of either end.
    ``face_boxes`` is an optional detector given the small RGB analysis frame
    (uint8, H x W x 3) that returns (x, y, w, h) boxes in its pixels.

    Raises ValueError for a missing or unreadable video, bad arguments, or when
    no candidate frame is usable.
    """
    video, out = Path(video), Path(out)
    if width < 2:
        raise ValueError("The thumbnail width must be at least 2 pixels.")
    if candidates < 1:
        raise ValueError("At least one candidate frame is needed.")
    if not video.is_file():
        raise ValueError(f"Video {video.name} does not exist.")
    try:
        container = av.open(
            str(video), mode="r", options={"protocol_whitelist": "file"}
        )
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"Video {video.name} cannot be read: {exc}") from exc
    with container:
        if not container.streams.video:
            raise ValueError(f"Video {video.name} has no video stream.")
        stream = container.streams.video[0]
        time_base = stream.time_base
        if time_base is None:
            raise ValueError(f"Video {video.name} has no time base.")
        start = float(stream.start_time * time_base) if stream.start_time else 0.0
        if stream.duration:
            length = float(stream.duration * time_base)
        elif container.duration:
            length = container.duration / av.time_base
        else:
            raise ValueError(f"Video {video.name} has no known duration.")
        rate = stream.average_rate or stream.base_rate
        frame_time = 1.0 / float(rate) if rate else 1.0 / 30.0

        def usable_time(t: float) -> bool:
            return EDGE_MARGIN <= t <= length - EDGE_MARGIN and not _near(
                t, avoid, AVOID_MARGIN
            )

        times = [length * (i + 0.5) / candidates for i in range(candidates)]
        best: tuple[_Scores, float, av.VideoFrame] | None = None
        fallback: tuple[_Scores, float, av.VideoFrame] | None = None
        seen: set[float] = set()
        for target in times:
            if not usable_time(target):
                continue
            frame = _frame_at(container, stream, start + target, frame_time)
            if frame is None or frame.time is None:
                continue
            t = float(frame.time) - start
            if t in seen or not usable_time(t):
                continue
            seen.add(t)
            scores = score_frame(_analysis_rgb(frame), face_boxes)
            if scores.exposure < MIN_EXPOSURE:
                if fallback is None or scores.score > fallback[0].score:
                    fallback = (scores, t, frame)
                continue
            if best is None or scores.score > best[0].score:
                best = (scores, t, frame)
        if best is None and fallback is None:
            # Every sample fell near an edge or a cut (a very short video):
            # the middle frame, whatever it shows.
            frame = _frame_at(container, stream, start + length / 2, frame_time)
            if frame is not None and frame.time is not None:
                scores = score_frame(_analysis_rgb(frame), face_boxes)
                fallback = (scores, float(frame.time) - start, frame)
        # A video that is dark or flat throughout still gets its best frame.
        best = best or fallback
        if best is None:
            raise ValueError(f"Video {video.name} has no frame to make a thumbnail of.")
        scores, t, frame = best
        sar = stream.sample_aspect_ratio
        display_w = frame.width * (float(sar) if sar else 1.0)
        height = _even(width * frame.height / display_w)
        image = frame.reformat(width=width, height=height, format="rgb24").to_image()
    _write_jpeg(image, out)
    return ThumbnailChoice(
        time=t,
        score=scores.score,
        sharpness=scores.sharpness,
        exposure=scores.exposure,
        colourfulness=scores.colourfulness,
        face=scores.face,
    )


def _analysis_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The small RGB copy a frame is scored on."""
    aw = min(ANALYSIS_WIDTH, frame.width)
    ah = _even(aw * frame.height / frame.width)
    return frame.reformat(width=aw, height=ah, format="rgb24").to_ndarray()


def _frame_at(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    at: float,
    frame_time: float,
) -> av.VideoFrame | None:
    """The first frame at or after ``at`` seconds (stream time): seek to the
    keyframe before it and decode forward only as far as needed."""
    assert stream.time_base is not None
    container.seek(int(at / stream.time_base), stream=stream, backward=True)
    last: av.VideoFrame | None = None
    for count, frame in enumerate(container.decode(stream)):
        last = frame
        if frame.time is not None and frame.time >= at - frame_time / 2:
            return frame
        if count >= _MAX_DECODE_PER_SEEK:
            break
    return last
