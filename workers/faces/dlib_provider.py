"""The embedded face provider: dlib's HOG face detector, its 68-point
landmark model and its ResNet identity embedding (128 numbers), the ResNet
run by onnxruntime (``dlib_resnet``) when it is installed.

The weights ship in the ``face_recognition_models`` package, which every
studio installs with the web app, so this provider works on any host with no
model store at all. That package's ``__init__`` imports ``pkg_resources``,
which current setuptools no longer provides, so its ``models/`` folder is
found with ``importlib`` instead of importing it.

Same-person threshold (cosine similarity of the normalised embeddings): 0.91.
dlib's authors give a Euclidean distance of 0.6 between raw descriptors as the
same-person boundary of this model (99.38 % on the LFW benchmark). Raw
descriptors have a near-constant length (1.38-1.47 measured on the studio's
test portraits), so that boundary is a cosine of 1 - 0.6^2 / (2 * 1.43^2) =
0.912. On the test portraits (the astronaut and Grace Hopper, each flipped,
cropped, scaled, brightened, darkened, JPEG-compressed and rotated by up to
15 degrees) pairs of the same person scored at least 0.98 and pairs of the two
people at most 0.90, so 0.91 separates them with room on both sides
(``tests/unit/workers/test_faces.py`` checks it).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .base import Face, FaceModelMissing, normalise, rgb_image
from .dlib_resnet import ResNetRunner

DETECT_LONG_SIDE = 1024  # detection runs on a copy at most this long
# dlib's own boundary is 0, which lets textures through: the flag patch on
# the astronaut's sleeve scores 0.06 to 0.25 depending on the framing, and
# the consistency gate would take it for someone else. The test portraits'
# faces score 0.43 or more even blurred, darkened or rotated by 15 degrees.
MIN_DETECTOR_SCORE = 0.3
CHIP_SIZE = 150  # the ResNet's input, cut by dlib from the 68 points
CHIP_PADDING = 0.25

LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def models_folder() -> Path:
    """Where ``face_recognition_models`` keeps its ``.dat`` files."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelMissing(
            "the dlib face models are not installed: pip install"
            " face_recognition_models dlib-bin (requirements/base.txt)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


class DlibProvider:
    name = "dlib"
    version = "dlib-hog-resnet-1"
    embedding_size = 128
    threshold = 0.91

    def __init__(self, models: Path | None = None, *, fast: bool = True) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise FaceModelMissing(
                "dlib is not installed: pip install dlib-bin (requirements/base.txt)"
            ) from exc
        folder = models or models_folder()
        for name in (LANDMARKS_FILE, RESNET_FILE):
            if not (folder / name).is_file():
                raise FaceModelMissing(f"the dlib face model {name} is missing")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        # The network through onnxruntime: about 20 times faster than dlib's
        # own code in the dlib-bin wheel, with equal outputs; dlib's own is
        # loaded only when that cannot run (or is not wanted).
        self._runner: ResNetRunner | None = None
        self._resnet = None
        if fast:
            try:
                self._runner = ResNetRunner(folder / RESNET_FILE)
            except ImportError:
                self._runner = None
        if self._runner is None:
            self._resnet = dlib.face_recognition_model_v1(str(folder / RESNET_FILE))
        # dlib's objects are not documented as thread-safe; a worker may run
        # a check while its task thread reports progress.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces on a copy at most ``DETECT_LONG_SIDE`` long, looked for again
        at twice that scale when none is found (faces down to about 40 pixels
        of the copy), with landmarks placed on the full picture."""
        image = rgb_image(image)
        height, width = image.shape[:2]
        scale = min(1.0, DETECT_LONG_SIDE / max(height, width))
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            rects, scores, _ = self._detector.run(small, 0, MIN_DETECTOR_SCORE)
            if len(rects) == 0:
                rects, scores, _ = self._detector.run(small, 1, MIN_DETECTOR_SCORE)
            faces = []
            for rect, score in zip(rects, scores, strict=True):
                box = (
                    rect.left() / scale,
                    rect.top() / scale,
                    (rect.right() + 1) / scale,
                    (rect.bottom() + 1) / scale,
                )
                shape = self._landmarks(image, self._rect(box))
                points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
                faces.append(Face(box, float(score), points))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        image = rgb_image(image)
        with self._lock:
            chips = [
                self._dlib.get_face_chip(
                    image, self._shape(face), size=CHIP_SIZE, padding=CHIP_PADDING
                )
                for face in faces
            ]
            if self._runner is not None:
                return normalise(self._runner(chips))
            assert self._resnet is not None
            rows = [np.asarray(self._resnet.compute_face_descriptor(c)) for c in chips]
        return normalise(np.stack(rows))

    def _rect(self, box: tuple[float, float, float, float]):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        return self._dlib.rectangle(x0, y0, max(x0 + 1, x1 - 1), max(y0 + 1, y1 - 1))

    def _shape(self, face: Face):
        points = np.asarray(face.landmarks)
        if len(points) != 68:
            raise ValueError("the dlib embedding needs the 68 dlib landmarks")
        parts = self._dlib.points()
        for x, y in points:
            parts.append(self._dlib.point(int(round(x)), int(round(y))))
        return self._dlib.full_object_detection(self._rect(face.box), parts)
