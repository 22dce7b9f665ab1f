"""Probe media files with PyAV (its wheels bundle the FFmpeg libraries, so no
``ffprobe`` binary is needed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av


class ProbeError(ValueError):
    """The file could not be opened as media."""


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # "video", "audio", "subtitle", "data"
    codec: str
    attached_picture: bool = False  # cover art inside an audio file
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration: float | None = None


@dataclass(frozen=True)
class MediaInfo:
    format_name: str
    duration: float | None
    bit_rate: int | None
    streams: list[StreamInfo] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[StreamInfo]:
        """Streams of one kind, cover art left out of "video"."""
        return [s for s in self.streams if s.kind == kind and not s.attached_picture]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe_media(path: str | Path) -> MediaInfo:
    """Describe the container and streams of ``path``.

    Only local files are opened (the path is passed as a file, never a URL).
    """
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"{path.name}: no such file")
    try:
        container = av.open(str(path), mode="r", options={"protocol_whitelist": "file"})
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ProbeError(
            f"{path.name}: not a media file FFmpeg can read ({exc})"
        ) from exc
    with container:
        streams: list[StreamInfo] = []
        for stream in container.streams:
            kind = stream.type or "data"
            codec = stream.codec_context.name if stream.codec_context else "unknown"
            disposition = int(getattr(stream, "disposition", 0) or 0)
            attached = bool(disposition & 0x0400)  # AV_DISPOSITION_ATTACHED_PIC
            info: dict[str, object] = {
                "index": stream.index,
                "kind": kind,
                "codec": codec,
                "attached_picture": attached,
                "duration": _seconds(stream.duration, stream.time_base),
            }
            if isinstance(stream, av.video.stream.VideoStream):
                info["width"] = stream.codec_context.width
                info["height"] = stream.codec_context.height
                rate = stream.average_rate or stream.base_rate
                info["fps"] = float(rate) if rate else None
                info["frames"] = stream.frames or None
            elif isinstance(stream, av.audio.stream.AudioStream):
                info["sample_rate"] = stream.codec_context.sample_rate
                info["channels"] = stream.codec_context.channels
            streams.append(StreamInfo(**info))  # type: ignore[arg-type]
        duration = container.duration / av.time_base if container.duration else None
        tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
        return MediaInfo(
            format_name=container.format.name,
            duration=duration,
            bit_rate=container.bit_rate or None,
            streams=streams,
            tags=tags,
        )
