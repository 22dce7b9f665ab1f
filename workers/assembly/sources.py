"""Where the renderer's frames come from: stills with a camera move, and video.

Every source hands out its frames in order, one at a time, as flat yuv420p
buffers of the output size (BT.709, TV range), and holds at most one prepared
image or one decoder process: a three-minute render never keeps more than a
few frames in memory.

* ``StillSource``: ffmpeg decodes the image once (EXIF orientation applied,
  scaled down to just the pixels the closest view needs, graded through the
  3D LUT) into 4:2:0 planes; each frame is then one sub-pixel affine warp of
  those planes (``motion.Planes.draw``). Grading the still before the move
  is the same as grading every frame, at the cost of one.
* ``VideoSource``: an ffmpeg process decodes the clip from its in point,
  conforms it to the size (scaled to cover, centred crop), grades it and
  writes raw frames to a pipe; the frames for the output rate and the clip's
  speed are picked by index, and a clip shorter than its slot holds its last
  frame.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from workers.assembly.ffmpeg import (
    FFmpegError,
    FFmpegProcess,
    base_command,
    demuxer_name,
    input_args,
    stderr_tail,
)
from workers.assembly.motion import Planes, Size, View, frame_view, prepared_size
from workers.assembly.stills import StillInfo, inspect_image
from workers.probe import ProbeError, StreamInfo, probe_media

# Conversions to the output's colour space, so every source agrees with the
# encoder's BT.709 tags whatever the input was.
TO_YUV420 = "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic,format=yuv420p"


def frame_bytes(size: Size) -> int:
    return size[0] * size[1] * 3 // 2


class FrameSource(Protocol):
    frames: int

    def read_into(self, out: np.ndarray) -> None:
        """Write the next frame into ``out`` (flat yuv420p of the output size)."""

    def close(self) -> None: ...


def read_frame(stream: IO[bytes], out: np.ndarray) -> bool:
    """Fill ``out`` from ``stream``; False at end of stream."""
    view = out.data.cast("B")
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            return False
        got += n
    return True


def _jpeg_reduction(width: int, height: int, need_w: int, need_h: int) -> int:
    """The largest n (0..3) whose 1/2**n decode still has ``need`` pixels."""
    n = 0
    while n < 3 and -(-width >> (n + 1)) >= need_w and -(-height >> (n + 1)) >= need_h:
        n += 1
    return n


def probe_video(path: Path) -> tuple[StreamInfo, str]:
    """The first video stream of a file, and the demuxer to force on it.

    ValueError, naming the file, for one that is missing, unreadable, has no
    video, or is a playlist-like format that would read other files.
    """
    if not path.is_file():
        raise ValueError(f"{path.name}: no such video")
    try:
        info = probe_media(path)
    except ProbeError as exc:
        raise ValueError(f"{path.name}: cannot be read: {exc}") from exc
    streams = info.of_kind("video")
    if not streams:
        raise ValueError(f"{path.name}: has no video stream")
    fmt = demuxer_name(info.format_name)
    if fmt is None:
        raise ValueError(f"{path.name}: is not a plain media file")
    return streams[0], fmt


def _run_to_bytes(args: list[str], n: int, what: str) -> bytes:
    """Run ffmpeg writing raw video to stdout; the first ``n`` bytes."""
    proc = subprocess.run(
        [*base_command(), *args, "pipe:1"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or len(proc.stdout) < n:
        detail = stderr_tail(proc.stderr.decode("utf-8", "replace"))
        raise FFmpegError(f"{what}: could not be decoded: {detail or 'no picture'}")
    return proc.stdout[:n]


@dataclass
class StillSource:
    """``frames`` frames of ``image`` moving from view ``start`` to ``end``."""

    image: Path
    size: Size
    frames: int
    start: View
    end: View
    move: str | None = None  # the named move, for its easing
    grade: str | None = None  # an ffmpeg filter fragment (lut3d=...), or None
    info: StillInfo | None = None  # the image's header, when already read
    _planes: Planes | None = None
    _next: int = 0

    @classmethod
    def for_move(
        cls,
        image: Path,
        size: Size,
        frames: int,
        views: tuple[View, View],
        *,
        move: str | None = None,
        grade: str | None = None,
        info: StillInfo | None = None,
    ) -> StillSource:
        return cls(Path(image), size, frames, views[0], views[1], move, grade, info)

    def prepare(self) -> None:
        """Decode, orient, scale and grade the image (once; thread-safe to
        call ahead of the first ``read_into``)."""
        if self._planes is not None:
            return
        src = self.info or inspect_image(self.image)
        max_zoom = max(self.start.zoom, self.end.zoom)
        w, h = prepared_size((src.width, src.height), self.size, max_zoom)
        chain = [*src.orient, f"scale={w}:{h}:flags=area", "setsar=1"]
        if self.grade:
            chain += ["format=gbrp", self.grade]
        chain.append(TO_YUV420)
        options = ["-noautorotate"]
        if src.decoder:
            options += ["-c:v", src.decoder]
        if src.decoder == "mjpeg":
            # JPEG can decode at 1/2, 1/4 or 1/8 size for almost nothing:
            # a 12-megapixel photo for a 1080p frame needs no more than that.
            options += ["-lowres", str(_jpeg_reduction(src.width, src.height, w, h))]
        args = [
            *input_args(self.image, fmt="image2", options=options),
            "-vf", ",".join(chain),
            "-frames:v", "1",
            "-f", "rawvideo", "-pix_fmt", "yuv420p",
        ]  # fmt: skip
        data = _run_to_bytes(args, frame_bytes((w, h)), self.image.name)
        self._planes = Planes.from_yuv420p(data, (w, h))

    def read_into(self, out: np.ndarray) -> None:
        self.prepare()
        assert self._planes is not None
        i = min(self._next, self.frames - 1)
        view = frame_view(self.start, self.end, self.move, i, self.frames)
        self._planes.draw(view, self.size, out)
        self._next += 1

    def close(self) -> None:
        self._planes = None


class VideoSource:
    """``frames`` frames of a video file from ``start`` seconds at ``speed``.

    ffmpeg decodes and conforms every source frame (size, grade, colour);
    which of them each output frame shows is chosen here by index,
    ``floor(n * speed * source_fps / fps)``. Letting ffmpeg's ``fps`` filter
    choose from retimed timestamps picks unevenly (1, 3, 2 frames apart)
    when a container keeps times in whole milliseconds, as Matroska does.
    """

    def __init__(
        self,
        video: Path,
        size: Size,
        fps: int,
        frames: int,
        *,
        start: float = 0.0,
        speed: float = 1.0,
        grade: str | None = None,
    ) -> None:
        self.video = Path(video)
        self.size = size
        self.fps = fps
        self.frames = frames
        self.start = start
        self.speed = speed
        self.grade = grade
        self._process: FFmpegProcess | None = None
        self._step = speed  # source frames per output frame; set by prepare()
        self._next = 0  # output frames handed out
        self._decoded = 0  # source frames read from ffmpeg
        self._ended = False
        self._last = np.empty(frame_bytes(size), dtype=np.uint8)

    def _command(self) -> list[str]:
        stream, fmt = probe_video(self.video)
        length = stream.duration
        if length is not None and self.start >= length:
            raise ValueError(
                f"{self.video.name}: its in point {self.start:g} s is past its end "
                f"({length:.3f} s)"
            )
        source_fps = stream.fps or float(self.fps)
        self._step = self.speed * source_fps / self.fps
        needed = math.floor((self.frames - 1) * self._step + 1e-6) + 1
        w, h = self.size
        chain = [
            f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic",
            f"crop={w}:{h}",
            "setsar=1",
        ]
        if self.grade:
            chain += ["format=gbrp", self.grade]
        chain.append(TO_YUV420)
        seek = ["-ss", f"{self.start:.6f}"] if self.start > 0 else []
        return [
            *base_command(),
            *input_args(self.video, fmt=fmt, options=seek),
            "-an", "-sn", "-dn",
            "-vf", ",".join(chain),
            "-fps_mode", "passthrough",
            "-frames:v", str(needed),
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1",
        ]  # fmt: skip

    def prepare(self) -> None:
        if self._process is None:
            self._process = FFmpegProcess(self._command(), stdin=False)

    def read_into(self, out: np.ndarray) -> None:
        self.prepare()
        assert self._process is not None
        stdout = self._process.proc.stdout
        assert stdout is not None
        wanted = math.floor(self._next * self._step + 1e-6)
        while self._decoded <= wanted and not self._ended:
            if read_frame(stdout, self._last):
                self._decoded += 1
            else:
                # A clip shorter than its slot holds its last frame; one that
                # stopped because it could not be decoded is an error.
                self._ended = True
                if self._process.proc.wait() != 0:
                    raise self._process.failure(f"decoding {self.video.name}")
        if self._decoded == 0:
            raise self._process.failure(f"decoding {self.video.name}")
        out[:] = self._last
        self._next += 1

    def close(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process = None
