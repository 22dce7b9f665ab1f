"""Still images: what the renderer needs to know before decoding one.

Uploads are stored under content hashes without a telling extension, and
phone photos carry their orientation in EXIF. ``inspect_image`` reads both
from the header (Pillow, no full decode) so ffmpeg can be told exactly which
decoder to use and which turns make the picture upright.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# EXIF orientation -> filters that make the pixels upright. ffmpeg's own
# autorotation is turned off so the result never depends on its version.
ORIENT_FILTERS = {
    2: ["hflip"],
    3: ["hflip", "vflip"],
    4: ["vflip"],
    5: ["transpose=cclock_flip"],
    6: ["transpose=clock"],
    7: ["transpose=clock_flip"],
    8: ["transpose=cclock"],
}
# Decoder to use for each Pillow format: uploads are stored under content hashes
# without a telling extension, so the image2 demuxer cannot guess the codec.
DECODERS = {
    "JPEG": "mjpeg",
    "MPO": "mjpeg",  # multi-picture JPEG from many cameras: its first picture
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
}


@dataclass(frozen=True)
class StillInfo:
    width: int  # upright size, after EXIF orientation
    height: int
    decoder: str | None
    orient: list[str]


def inspect_image(image: Path) -> StillInfo:
    try:
        with Image.open(image) as img:
            width, height = img.size
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            fmt = img.format or ""
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(f"{image.name}: not an image that can be read") from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    orient = ORIENT_FILTERS.get(orientation, [])
    return StillInfo(width, height, DECODERS.get(fmt), orient)
