"""Pictures and clips of two real people for the face tests: the astronaut
(scikit-image) and Grace Hopper (matplotlib's sample data), and variants of
each as a studio's users would upload them."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import matplotlib.cbook
import numpy as np
import skimage.data
from PIL import Image


def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.astronaut())


def hopper() -> np.ndarray:
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _rotated(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "flipped": lambda im: im[:, ::-1],
    "cropped": lambda im: im[im.shape[0] // 10 : -im.shape[0] // 6,
                             im.shape[1] // 8 : -im.shape[1] // 10],
    "half size": lambda im: cv2.resize(
        im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA
    ),
    "double size": lambda im: cv2.resize(
        im, (im.shape[1] * 2, im.shape[0] * 2), interpolation=cv2.INTER_CUBIC
    ),
    "brighter": lambda im: np.clip(im.astype(np.int16) + 60, 0, 255).astype(np.uint8),
    "darker": lambda im: (im * 0.45).astype(np.uint8),
    "jpeg quality 15": lambda im: _jpeg(im, 15),
    "rotated -15": lambda im: _rotated(im, -15),
    "rotated -8": lambda im: _rotated(im, -8),
    "rotated 8": lambda im: _rotated(im, 8),
    "rotated 15": lambda im: _rotated(im, 15),
}  # fmt: skip


def variant(image: np.ndarray, name: str) -> np.ndarray:
    return np.ascontiguousarray(VARIANTS[name](image))


def write_clip(
    path: Path,
    frame_at: Callable[[int], np.ndarray],
    frames: int,
    *,
    fps: int = 30,
) -> Path:
    """An H.264 clip whose frame i is ``frame_at(i)`` (RGB, even size)."""
    first = frame_at(0)
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for i in range(frames):
            picture = first if i == 0 else frame_at(i)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
