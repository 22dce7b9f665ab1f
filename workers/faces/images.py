"""Reading pictures for the face providers: upright (EXIF orientation
applied), RGB, 8 bits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's own decompression-bomb guard is raised to this for face work: the
# studio's uploads are checked against STUDIO_MAX_IMAGE_PIXELS before they
# get here, and a 50-megapixel photo is ordinary.
MAX_PIXELS = 200_000_000


def load_rgb(path: Path | str) -> np.ndarray:
    """The picture at ``path`` as an upright RGB uint8 array."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"{path.name}: the picture is too large to read")
            upright = ImageOps.exif_transpose(img)
            return np.ascontiguousarray(np.asarray(upright.convert("RGB")))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path.name}: not a picture that can be read") from exc


def save_rgb(image: np.ndarray, path: Path, *, quality: int = 92) -> Path:
    """Write an RGB array as JPEG (or PNG, by the suffix of ``path``)."""
    Image.fromarray(image).save(path, quality=quality)
    return path
