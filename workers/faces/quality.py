"""Is a photo fit to be a reference of a character? Checks of the face's
size, sharpness, pose and lighting, each a note with a reason.

Every measure is taken from the picture or from the aligned 112-pixel crop
(``base.align``), so it does not depend on the photo's resolution:

* size: the shorter side of the detected box, in photo pixels. Below 60 the
  identity models see an enlarged blur; below 120 a warning.
* sharpness: variance of the Laplacian of the crop's grey levels divided by
  their variance (so a dim face is not taken for a blurred one). Sharp test
  portraits measure 0.17-1.3; a Gaussian blur of 3 % of the face's width
  brings them to 0.005-0.04. Below 0.015 rejected, below 0.04 a warning.
* pose, in degrees, estimated from the five points (eyes, nose tip, mouth
  corners) with a generic face whose nose tip stands about half the eye
  distance in front of the eyes and a third of the eye-to-mouth distance in
  front of the eye-mouth line: roll is the eyes' slope, yaw the nose's
  sideways offset from the face's midline, pitch its height between the eyes
  and the mouth against the frontal 0.58. A coarse estimate, good enough to
  turn away profiles and faces looking far up or down.
* lighting, on the crop's grey levels (0-255): the mean (dark below 35,
  washed out above 220; warnings at 60 and 200), the share of clipped pixels
  (at most 5 or at least 250; over 25 % rejected), the contrast (standard
  deviation under 12: flat, a warning) and the balance of the crop's left and
  right halves (a difference over 35 % of the mean: strong side light, a
  warning).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .base import Face, align

REJECT = "reject"
WARN = "warn"

MIN_FACE_PX = 60
GOOD_FACE_PX = 120
MIN_SHARPNESS = 0.015
GOOD_SHARPNESS = 0.04
MAX_YAW = 35.0
WARN_YAW = 20.0
MAX_PITCH = 30.0
WARN_PITCH = 20.0
MAX_ROLL = 30.0
WARN_ROLL = 25.0
MIN_BRIGHTNESS = 35.0
LOW_BRIGHTNESS = 60.0
MAX_BRIGHTNESS = 220.0
HIGH_BRIGHTNESS = 200.0
MAX_CLIPPED = 0.25
MIN_CONTRAST = 12.0
MAX_SIDE_IMBALANCE = 0.35

FRONTAL_NOSE_HEIGHT = 0.58  # nose tip between the eye line (0) and mouth (1)
NOSE_DEPTH_EYES = 0.5  # nose tip in front of the eyes, in eye distances
NOSE_DEPTH_HEIGHT = 0.35  # ... in eye-to-mouth distances


@dataclass(frozen=True)
class Note:
    """One finding about a reference photo: ``level`` "reject" turns the
    photo away, "warn" keeps it and says what would make it better."""

    code: str
    level: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True)
class FaceQuality:
    face_px: float
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    brightness: float
    contrast: float
    clipped: float
    side_balance: float  # (right - left) / mean of the crop's halves

    def to_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def estimate_pose(face: Face) -> Pose:
    left_eye, right_eye, nose, mouth_l, mouth_r = face.five_points().astype(float)
    dx, dy = right_eye - left_eye
    roll = math.degrees(math.atan2(dy, dx))
    # Undo the roll so yaw and pitch are read in the face's own frame.
    c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
    turn = np.array([[c, -s], [s, c]])
    eyes = turn @ ((left_eye + right_eye) / 2)
    mouth = turn @ ((mouth_l + mouth_r) / 2)
    tip = turn @ nose
    eye_distance = max(math.hypot(dx, dy), 1e-6)
    midline = (eyes[0] + mouth[0]) / 2
    yaw = math.degrees(math.atan((tip[0] - midline) / eye_distance / NOSE_DEPTH_EYES))
    height = max(mouth[1] - eyes[1], 1e-6)
    drop = (tip[1] - eyes[1]) / height - FRONTAL_NOSE_HEIGHT
    pitch = math.degrees(math.atan(drop / NOSE_DEPTH_HEIGHT))
    return Pose(yaw=yaw, pitch=pitch, roll=roll)


def measure(image: np.ndarray, face: Face) -> FaceQuality:
    crop = cv2.cvtColor(align(image, face), cv2.COLOR_RGB2GRAY)
    grey = crop.astype(np.float64)
    variance = float(grey.var())
    laplacian = float(cv2.Laplacian(crop, cv2.CV_64F).var())
    half = crop.shape[1] // 2
    left, right = float(grey[:, :half].mean()), float(grey[:, half:].mean())
    mean = float(grey.mean())
    pose = estimate_pose(face)
    return FaceQuality(
        face_px=face.size,
        sharpness=laplacian / max(variance, 1.0),
        yaw=pose.yaw,
        pitch=pose.pitch,
        roll=pose.roll,
        brightness=mean,
        contrast=math.sqrt(variance),
        clipped=float(np.mean((crop <= 5) | (crop >= 250))),
        side_balance=(right - left) / max(mean, 1.0),
    )


def judge(q: FaceQuality) -> list[Note]:
    """The notes a face of quality ``q`` earns, rejections first."""
    notes: list[Note] = []

    def note(code: str, level: str, message: str) -> None:
        notes.append(Note(code, level, message))

    if q.face_px < MIN_FACE_PX:
        note(
            "small_face",
            REJECT,
            f"the face is {q.face_px:.0f} px; at least {MIN_FACE_PX} px is needed",
        )
    elif q.face_px < GOOD_FACE_PX:
        note(
            "small_face",
            WARN,
            f"the face is only {q.face_px:.0f} px; a closer or larger photo"
            " gives a better likeness",
        )
    if q.sharpness < MIN_SHARPNESS:
        note("blurred", REJECT, "the face is blurred")
    elif q.sharpness < GOOD_SHARPNESS:
        note("blurred", WARN, "the face is a little soft")
    for code, value, limit, warn_at, what in (
        ("turned", q.yaw, MAX_YAW, WARN_YAW, "turned sideways"),
        ("tilted", q.pitch, MAX_PITCH, WARN_PITCH, "looking up or down"),
        ("rolled", q.roll, MAX_ROLL, WARN_ROLL, "tilted to the side"),
    ):
        if abs(value) > limit:
            message = f"the face is {what} ({abs(value):.0f}°; at most {limit:.0f}°)"
            note(code, REJECT, message)
        elif abs(value) > warn_at:
            note(code, WARN, f"the face is {what} ({abs(value):.0f}°)")
    if q.brightness < MIN_BRIGHTNESS:
        note("dark", REJECT, "the face is too dark")
    elif q.brightness > MAX_BRIGHTNESS:
        note("bright", REJECT, "the face is washed out")
    elif q.clipped > MAX_CLIPPED:
        note("clipped", REJECT, f"{q.clipped:.0%} of the face is pure black or white")
    elif q.brightness < LOW_BRIGHTNESS:
        note("dark", WARN, "the face is dimly lit")
    elif q.brightness > HIGH_BRIGHTNESS:
        note("bright", WARN, "the face is very brightly lit")
    if q.contrast < MIN_CONTRAST and q.brightness >= MIN_BRIGHTNESS:
        note("flat", WARN, "the light on the face is flat")
    if abs(q.side_balance) > MAX_SIDE_IMBALANCE:
        note("side_light", WARN, "strong light from one side")
    notes.sort(key=lambda n: n.level != REJECT)
    return notes


def is_rejected(notes: list[Note]) -> bool:
    return any(n.level == REJECT for n in notes)
