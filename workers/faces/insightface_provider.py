"""The InsightFace face provider: the ``buffalo_l`` pack's SCRFD-10GF detector
(boxes and five keypoints) and its ArcFace ResNet-50 trained on WebFace600K
(512 numbers per face), read from the model store.

The two ONNX graphs run on ``onnxruntime`` directly rather than through the
``insightface`` pip package: that package is an sdist that needs a compiler,
and its model zoo downloads weights when a file is missing, which studio hosts
cannot do. onnxruntime runs the same graphs; the pre- and post-processing here
follows InsightFace's own ``model_zoo/scrfd.py`` and ``model_zoo/arcface_onnx.py``
(letterbox into 640x640, pixels (p - 127.5) / 128 for the detector and
(p - 127.5) / 127.5 for the embedding, RGB, score 0.5, NMS at IoU 0.4), with
the face crop made by ``base.align`` on the same ArcFace template.

Same-person threshold (cosine similarity of the normalised embeddings): 0.4.
It is the default InsightFace's authors ship for ``buffalo_l`` 1:1 compare in
their own Evaluation Studio: ``DEFAULT_THRESHOLD = 0.4`` next to
``DEFAULT_MODEL_NAME = "buffalo_l"`` in
https://github.com/deepinsight/insightface/blob/master/python-package/insightface/gui/core/constants.py
(read at commit 7fadd420), and ``gui/core/recognition.py`` there calls a pair
"Same Person" at and above it and "Uncertain" within 0.05 below it. Their
history shows it is a judgement call rather than a measured boundary (it went
0.5 -> 0.28 -> 0.4 in commits ee3907f and e2d3acf, May 2026), and their
``python-package/docs/commercial_evaluation.md`` calls thresholds "business
decisions". It could not be measured here: the weights
cannot be downloaded on this network, so the studio's own test portraits have
not been scored with them (the tests run this code on tiny random-weight
graphs of the same signature). Measure it on the test portraits where the
pack is installed, as the dlib provider's threshold was, and bump ``version``
if it moves.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .base import (
    TEMPLATE_SIZE,
    Face,
    FaceModelMissing,
    align,
    normalise,
    rgb_image,
)

MODEL_KEY = "insightface-buffalo-l"  # the model registry's key for the pack
DETECTOR_FILE = "det_10g.onnx"
EMBEDDER_FILE = "w600k_r50.onnx"
PACK_SUBFOLDER = "buffalo_l"  # the name the pack's zip is known by

DETECT_SIZE = 640  # the square InsightFace runs det_10g at (det_size)
DETECT_MEAN, DETECT_STD = 127.5, 128.0
EMBED_MEAN, EMBED_STD = 127.5, 127.5
STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
SCORE_THRESHOLD = 0.5  # InsightFace's det_thresh
NMS_IOU = 0.4  # InsightFace's nms_thresh


def choose_providers(available: Sequence[str]) -> list[str]:
    """CUDA when this onnxruntime build offers it (onnxruntime-gpu), with the
    CPU behind it for the operators CUDA does not cover; else the CPU."""
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def pack_folder(model_dir: Path) -> Path:
    """The folder that holds the pack's files: ``model_dir`` itself, the
    ``buffalo_l/`` folder inside it when the zip was unpacked with its own
    top folder, or ``models/buffalo_l/`` as the hub's repository lays it out
    (``manage.py models pull``)."""
    if (model_dir / DETECTOR_FILE).is_file():
        return model_dir
    for nested in (model_dir / PACK_SUBFOLDER, model_dir / "models" / PACK_SUBFOLDER):
        if nested.is_dir():
            return nested
    return model_dir


class InsightFaceProvider:
    name = "insightface"
    version = "insightface-buffalo_l-1"
    embedding_size = 512
    threshold = 0.4

    def __init__(
        self, model_dir: Path, *, providers: Sequence[str] | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise FaceModelMissing(
                "onnxruntime is not installed: pip install onnxruntime"
                " (onnxruntime-gpu on CUDA hosts)"
            ) from exc
        folder = pack_folder(Path(model_dir))
        if not folder.is_dir():
            raise FaceModelMissing(
                f"the InsightFace buffalo_l face models are not installed:"
                f" there is no folder {folder}; run"
                f" python manage.py models pull {MODEL_KEY}"
            )
        for file in (DETECTOR_FILE, EMBEDDER_FILE):
            if not (folder / file).is_file():
                raise FaceModelMissing(
                    f"the InsightFace buffalo_l face models are not installed:"
                    f" {file} is missing from {folder}; run"
                    f" python manage.py models pull {MODEL_KEY}"
                )
        chosen = list(
            providers or choose_providers(onnxruntime.get_available_providers())
        )
        options = onnxruntime.SessionOptions()
        # Errors only: onnxruntime warns about graph details (unused
        # initialisers, shape hints) that a studio log has no use for.
        options.log_severity_level = 3
        self._detector = onnxruntime.InferenceSession(
            str(folder / DETECTOR_FILE), sess_options=options, providers=chosen
        )
        self._embedder = onnxruntime.InferenceSession(
            str(folder / EMBEDDER_FILE), sess_options=options, providers=chosen
        )
        self._check_graphs(folder)
        self._detector_input = str(self._detector.get_inputs()[0].name)
        self._embedder_input = str(self._embedder.get_inputs()[0].name)
        self._detect_size = _static_size(self._detector) or (DETECT_SIZE, DETECT_SIZE)
        # run() is thread-safe in onnxruntime, but a worker caches one
        # provider per process and may call it from two threads; two
        # detector runs at once on one GPU double the working memory the
        # model store budgeted for, for no gain in throughput.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces with a detector score of at least 0.5, largest first."""
        image = rgb_image(image)
        blob, (scale_x, scale_y) = self._detector_blob(image)
        with self._lock:
            outputs = self._detector.run(None, {self._detector_input: blob})
        height, width = blob.shape[2:]
        scores, boxes, points = _decode(outputs, height, width)
        keep = _nms(boxes, scores, NMS_IOU)
        scale = np.array([scale_x, scale_y], dtype=np.float32)
        faces = []
        for i in keep:
            box = boxes[i].reshape(2, 2) / scale
            x0, y0, x1, y1 = (float(v) for v in box.ravel())
            landmarks = (points[i] / scale).astype(np.float32)
            faces.append(Face((x0, y0, x1, y1), float(scores[i]), landmarks))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        image = rgb_image(image)
        crops = np.stack([align(image, face, TEMPLATE_SIZE) for face in faces])
        blob = (crops.astype(np.float32) - EMBED_MEAN) / EMBED_STD
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        with self._lock:
            (rows,) = self._embedder.run(None, {self._embedder_input: blob})
        return normalise(np.asarray(rows).reshape(len(faces), -1))

    def _detector_blob(
        self, image: np.ndarray
    ) -> tuple[np.ndarray, tuple[float, float]]:
        """The picture shrunk or grown to fit the detector's input with its
        aspect kept, in the top-left corner (black right and bottom, as
        InsightFace pads, so detector pixels map back by a scale alone), as
        a normalised NCHW blob; and the x and y scales from picture to blob."""
        height, width = image.shape[:2]
        input_w, input_h = self._detect_size
        scale = min(input_w / width, input_h / height)
        new_w = min(input_w, max(1, round(width * scale)))
        new_h = min(input_h, max(1, round(height * scale)))
        canvas = np.zeros((input_h, input_w, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_LINEAR
        )
        blob = (canvas.astype(np.float32) - DETECT_MEAN) / DETECT_STD
        blob = np.ascontiguousarray(blob.transpose(2, 0, 1)[np.newaxis])
        # Each axis keeps its own scale: rounding the new size makes them
        # differ by up to half a pixel over the whole side.
        return blob, (new_w / width, new_h / height)

    def _check_graphs(self, folder: Path) -> None:
        """A wrong file in the pack fails here, by name, not as a shape error
        in the middle of a render."""
        detector_outputs = len(self._detector.get_outputs())
        if detector_outputs != 3 * len(STRIDES):
            raise FaceModelMissing(
                f"{folder / DETECTOR_FILE} is not SCRFD with keypoints"
                f" ({detector_outputs} outputs, expected 9); run"
                f" python manage.py models pull {MODEL_KEY}"
            )
        width = self._embedder.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != self.embedding_size:
            raise FaceModelMissing(
                f"{folder / EMBEDDER_FILE} gives {width} numbers per face,"
                f" not {self.embedding_size}; run"
                f" python manage.py models pull {MODEL_KEY}"
            )


def _decode(
    outputs: Sequence[np.ndarray], height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (n,), boxes (n, 4) and five points (n, 5, 2) of every anchor at
    or above the score threshold, in detector-input pixels.

    SCRFD's nine outputs are the scores of strides 8, 16 and 32, then their
    box distances, then their keypoint offsets; one row per anchor, two
    anchors per grid cell, cells row by row. Distances and offsets are in
    units of the stride. Some exports add a leading batch axis of 1.
    """
    count = len(STRIDES)
    scores_all, boxes_all, points_all = [], [], []
    for level, stride in enumerate(STRIDES):
        scores = _rows(outputs[level], 1, stride)
        distances = _rows(outputs[level + count], 4, stride) * stride
        offsets = _rows(outputs[level + 2 * count], 10, stride) * stride
        centres = _anchor_centres(height // stride, width // stride, stride)
        if len(scores) != len(centres):
            raise ValueError(
                f"the detector gave {len(scores)} anchors at stride {stride}"
                f" for a {width}x{height} input, expected {len(centres)}"
            )
        keep = scores[:, 0] >= SCORE_THRESHOLD
        centres = centres[keep]
        distances, offsets = distances[keep], offsets[keep]
        # distance2bbox: left, top, right, bottom distances from the centre.
        boxes = np.concatenate(
            [centres - distances[:, :2], centres + distances[:, 2:]], axis=1
        )
        # distance2kps: each point is the centre plus an (x, y) offset.
        points = centres[:, np.newaxis, :] + offsets.reshape(-1, 5, 2)
        scores_all.append(scores[keep, 0])
        boxes_all.append(boxes)
        points_all.append(points)
    return (
        np.concatenate(scores_all).astype(np.float32),
        np.concatenate(boxes_all).astype(np.float32),
        np.concatenate(points_all).astype(np.float32),
    )


def _rows(output: np.ndarray, columns: int, stride: int) -> np.ndarray:
    array = np.asarray(output, dtype=np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(
            f"the detector's stride-{stride} output has shape {output.shape},"
            f" expected (anchors, {columns}); is this SCRFD with keypoints?"
        )
    return array


@lru_cache(maxsize=32)
def _anchor_centres(rows: int, cols: int, stride: int) -> np.ndarray:
    """(x * stride, y * stride) for each grid cell, row by row, each repeated
    once per anchor. Cached: the input size rarely changes."""
    ys, xs = np.mgrid[:rows, :cols]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    centres = np.repeat(centres, ANCHORS_PER_CELL, axis=0)
    centres.flags.writeable = False
    return centres


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices of the boxes kept by greedy non-maximum suppression, best
    score first. Boxes are continuous coordinates, so areas are w * h (not
    InsightFace's pixel-inclusive (w + 1) * (h + 1), which only differs for
    faces a few pixels wide)."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(
        boxes[:, 3] - boxes[:, 1], 0, None
    )
    keep: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        x0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        union = areas[best] + areas[rest] - overlap
        ratio = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = rest[ratio <= iou]
    return keep


def _static_size(session: Any) -> tuple[int, int] | None:
    """The (width, height) a graph with a fixed input size needs; None when
    its size is free (det_10g's is), so the default applies."""
    shape = session.get_inputs()[0].shape
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int):
        return width, height
    return None
