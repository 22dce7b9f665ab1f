"""The photo engine: a scene that shows the uploaded photo, moved by the
renderer. Its task checks that the photo can be read (so a broken file fails
its scene by name rather than the assembly half-way) and draws the scene's
first framing as a preview."""

from __future__ import annotations

import cv2
import numpy as np

from workers.assembly.motion import move_views
from workers.assembly.sources import StillSource, frame_bytes
from workers.assembly.stills import inspect_image

from . import SceneOutput, SceneRequest

PREVIEW_WIDTH = 320
PREVIEW_QUALITY = 85


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


class PhotoEngine:
    name = "photo"
    version = "photo-1"
    seeded = False  # the photo is the photo, whatever the seed

    def render(self, request: SceneRequest) -> SceneOutput:
        request.report(0.0, f"scene {request.index}: reading the photo")
        info = inspect_image(request.image)
        width = PREVIEW_WIDTH
        height = _even(PREVIEW_WIDTH * request.height / request.width)
        size = (width, height)
        views = move_views(
            request.move, (info.width, info.height), size, request.focus,
            request.strength,
        )  # fmt: skip
        source = StillSource.for_move(
            request.image, size, max(request.frames, 1), views, move=request.move,
            info=info,
        )  # fmt: skip
        frame = np.empty(frame_bytes(size), dtype=np.uint8)
        try:
            source.read_into(frame)
        finally:
            source.close()
        request.report(0.8, f"scene {request.index}: preview")
        bgr = cv2.cvtColor(
            frame.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420
        )
        preview = request.out_dir / "preview.jpg"
        if not cv2.imwrite(
            str(preview), bgr, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY]
        ):
            raise OSError(f"could not write the preview of scene {request.index}")
        request.report(1.0)
        return SceneOutput(preview=preview)
