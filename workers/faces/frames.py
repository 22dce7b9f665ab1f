"""Frames of a scene for the consistency check, as upright RGB arrays.

A scene is either a clip its engine made (``VideoFrames``) or a still the
renderer moves (``StillFrames``: each frame drawn with the renderer's own
views, so the check sees the framing the viewer will see). The check reads
frames in increasing order and looks back only a little (to find where a
change happens), which a forward decode with a short memory serves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from workers.assembly.motion import (
    frame_view,
    move_views,
    prepared_size,
    view_matrix,
)

from .images import load_rgb

MAX_SIDE = 1920  # frames are looked at no larger than this


class FrameSource(Protocol):
    frame_count: int
    fps: float
    size: tuple[int, int]  # (width, height) of the frames given

    def frame(self, index: int) -> np.ndarray: ...

    def close(self) -> None: ...


def _fit(width: int, height: int, longest: int = MAX_SIDE) -> tuple[int, int]:
    scale = min(1.0, longest / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


class VideoFrames:
    """The frames of a video file, decoded forward by PyAV; the last ``keep``
    are held, so looking back that far needs no second decode (further back
    starts the decode again)."""

    def __init__(self, path: Path | str, *, keep: int = 32) -> None:
        self.path = Path(path)
        self.keep = keep
        self._open()
        stream = self._stream
        rate = stream.average_rate or stream.base_rate
        self.fps = float(rate) if rate else 25.0
        count = stream.frames
        if not count:
            seconds = (
                float(stream.duration * stream.time_base)
                if stream.duration and stream.time_base
                else (self._container.duration or 0) / av.time_base
            )
            count = round(seconds * self.fps)
        self.frame_count = max(int(count), 1)
        width, height = stream.codec_context.width, stream.codec_context.height
        self.size = _fit(width, height)

    def _open(self) -> None:
        try:
            self._container = av.open(
                str(self.path), options={"protocol_whitelist": "file"}
            )
            self._stream = self._container.streams.video[0]
        except (av.error.FFmpegError, IndexError, OSError) as exc:
            raise ValueError(f"{self.path.name}: not a video that can be read") from exc
        self._stream.thread_type = "AUTO"
        self._frames = self._container.decode(self._stream)
        self._next = 0
        self._held: deque[tuple[int, av.VideoFrame]] = deque(maxlen=self.keep)

    def frame(self, index: int) -> np.ndarray:
        if index < 0:
            raise IndexError(index)
        oldest = self._held[0][0] if self._held else self._next
        if index < oldest:
            self.close()
            self._open()
        for held_index, held in self._held:
            if held_index == index:
                return self._rgb(held)
        try:
            while self._next <= index:
                decoded = next(self._frames)
                self._held.append((self._next, decoded))
                self._next += 1
        except StopIteration:
            # The container promised more frames than it holds.
            self.frame_count = self._next
            raise IndexError(index) from None
        except av.error.FFmpegError as exc:
            raise ValueError(
                f"{self.path.name}: frame {index} cannot be decoded"
            ) from exc
        return self._rgb(self._held[-1][1])

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = self.size
        return np.ascontiguousarray(
            frame.to_ndarray(format="rgb24", width=width, height=height)
        )

    def close(self) -> None:
        self._held.clear()
        self._container.close()


class StillFrames:
    """A still under a camera move, drawn as the renderer draws it: frame i
    shows the view ``i / (frames - 1)`` of the way through the move."""

    def __init__(
        self,
        image: Path | str,
        size: tuple[int, int],
        frames: int,
        fps: float,
        move: str,
        focus: tuple[float, float] = (0.5, 0.5),
        strength: float = 1.0,
    ) -> None:
        picture = load_rgb(image)
        height, width = picture.shape[:2]
        self.size = _fit(*size)
        self.frame_count = max(int(frames), 1)
        self.fps = float(fps)
        self.move = move
        self._start, self._end = move_views(
            move, (width, height), self.size, focus, strength
        )
        # Scaled once, as the renderer does, so no frame samples the photo
        # coarser than its pixels (which would alias fine detail).
        zoom = max(self._start.zoom, self._end.zoom)
        prepared = prepared_size((width, height), self.size, zoom)
        if prepared != (width, height):
            picture = cv2.resize(picture, prepared, interpolation=cv2.INTER_AREA)
        self._picture = picture

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= index < self.frame_count:
            raise IndexError(index)
        view = frame_view(self._start, self._end, self.move, index, self.frame_count)
        height, width = self._picture.shape[:2]
        matrix = view_matrix(view, (width, height), self.size)
        return cv2.warpAffine(
            self._picture,
            matrix,
            self.size,
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )

    def close(self) -> None:
        pass


class ArrayFrames:
    """Frames already in memory (an engine's output before it is encoded)."""

    def __init__(self, frames: Sequence[np.ndarray], fps: float) -> None:
        if not frames:
            raise ValueError("no frames")
        self._frames = list(frames)
        self.frame_count = len(self._frames)
        self.fps = float(fps)
        height, width = self._frames[0].shape[:2]
        self.size = (width, height)

    def frame(self, index: int) -> np.ndarray:
        return self._frames[index]

    def close(self) -> None:
        pass
