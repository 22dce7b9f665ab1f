"""Join scene clips into the finished video with the music under it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from workers.assembly.ffmpeg import demuxer_name, input_args, run_ffmpeg
from workers.probe import ProbeError, StreamInfo, probe_media

FORMATS = ("mp4", "webm", "gif")
FADE_OUT = 0.5  # seconds of music fade at the very end
AUDIO_RATE = 48000  # Opus only does 48 kHz; AAC uses it too so both sound alike
GIF_FPS = 15
GIF_MAX_WIDTH = 480


def _concat_line(path: Path) -> str:
    # The concat format quotes with '...'; a quote inside is closed, escaped
    # and reopened, shell style.
    text = str(path.absolute())
    if "\n" in text or "\r" in text:
        raise ValueError(f"Clip path contains a line break: {text!r}")
    return "file '" + text.replace("'", "'\\''") + "'\n"


def _video_stream(path: Path) -> StreamInfo:
    try:
        streams = probe_media(path).of_kind("video")
    except ProbeError as exc:
        raise ValueError(f"Clip {path.name} cannot be read: {exc}") from exc
    if not streams:
        raise ValueError(f"Clip {path.name} has no video stream.")
    return streams[0]


def _check_clips(clips: list[Path], fps: int, duration: float) -> None:
    streams = [_video_stream(c) for c in clips]
    first = streams[0]
    for clip, s in zip(clips, streams, strict=True):
        if s.fps and abs(s.fps - fps) > 0.01:
            raise ValueError(f"Clip {clip.name} runs at {s.fps:g} fps, not {fps}.")
        if (s.codec, s.width, s.height) != (first.codec, first.width, first.height):
            raise ValueError(
                f"Clip {clip.name} is {s.codec} {s.width}x{s.height} but the first "
                f"clip is {first.codec} {first.width}x{first.height}; all clips "
                "must be encoded alike to be joined."
            )
    total = sum(s.duration or 0.0 for s in streams)
    if total < duration - 0.5 / fps:
        raise ValueError(
            f"The clips last {total:.3f} s, less than the {duration:.3f} s asked for."
        )


def _audio_input(audio: Path) -> list[str]:
    try:
        info = probe_media(audio)
    except ProbeError as exc:
        raise ValueError(f"Music {audio.name} cannot be read: {exc}") from exc
    fmt = demuxer_name(info.format_name)
    if fmt is None or not info.of_kind("audio"):
        raise ValueError(f"Music {audio.name} has no audio stream.")
    return input_args(audio, fmt=fmt)


def _metadata_args(metadata: dict[str, str] | None) -> list[str]:
    args: list[str] = []
    for key, value in (metadata or {}).items():
        if not key or "=" in key or not key.isprintable():
            raise ValueError(f"Metadata key {key!r} is not a plain name.")
        args += ["-metadata", f"{key}={value}"]
    return args


def _music_filter(offset: float, duration: float) -> str:
    fade = min(FADE_OUT, duration / 2)
    return (
        f"[1:a:0]atrim=start={offset:.6f},asetpts=PTS-STARTPTS,"
        # Pad a song that ends early with silence, then cut exactly.
        f"apad=whole_dur={duration:.6f},atrim=end={duration:.6f},"
        f"afade=t=out:st={duration - fade:.6f}:d={fade:.6f},"
        f"aformat=sample_rates={AUDIO_RATE}:channel_layouts=stereo[a]"
    )


def assemble_video(
    clips: list[Path],
    audio: Path,
    out: Path,
    *,
    fps: int,
    duration: float,
    fmt: str = "mp4",
    audio_offset: float = 0.0,
    metadata: dict[str, str] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Join ``clips`` in order and lay ``audio`` (from ``audio_offset``) under them.

    The result lasts ``duration`` seconds (to within a frame); the music fades
    out over its last half second. mp4 stream-copies the H.264 clips, so cuts
    fall exactly on clip boundaries, and adds AAC 192k; webm re-encodes to
    VP9 + Opus; gif is silent, at most 15 fps and 480 px wide. Clips must share
    codec and size (as render_still_clip makes them) and last at least
    ``duration`` together. ``metadata`` goes into the container (not for gif).
    """
    clips = [Path(c) for c in clips]
    audio, out = Path(audio), Path(out)
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        choices = ", ".join(FORMATS)
        raise ValueError(f"Unknown format {fmt!r}; choose one of: {choices}.")
    if not clips:
        raise ValueError("There are no clips to assemble.")
    if fps < 1:
        raise ValueError("The frame rate must be positive.")
    if duration <= 0:
        raise ValueError("The duration must be positive.")
    if audio_offset < 0:
        raise ValueError("The audio offset cannot be negative.")
    for clip in clips:
        if not clip.is_file():
            raise ValueError(f"Clip {clip.name} does not exist.")
    _check_clips(clips, fps, duration)
    meta = _metadata_args(metadata)
    if fmt != "gif" and not audio.is_file():
        raise ValueError(f"Music {audio.name} does not exist.")
    audio_in = _audio_input(audio) if fmt != "gif" else []

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".concat-") as tmp:
        listing = Path(tmp) / "clips.txt"
        listing.write_text("".join(_concat_line(c) for c in clips), encoding="utf-8")
        # Absolute clip paths are "unsafe" to the concat demuxer; the
        # protocol whitelist still keeps it to local files.
        args = [*input_args(listing, fmt="concat", options=["-safe", "0"]), *audio_in]
        # The nearest whole number of frames: within half a frame of duration.
        frames = max(1, int(duration * fps + 0.5))
        args += ["-map_metadata", "-1", "-map_chapters", "-1"]
        if fmt == "mp4":
            args += [
                "-filter_complex", _music_filter(audio_offset, duration),
                "-map", "0:v:0", "-map", "[a]",
                "-frames:v", str(frames),
                "-c:v", "copy",
                "-c:a", "aac", "-b:a", "192k",
                # use_metadata_tags keeps keys mp4 has no atom for.
                "-movflags", "+faststart+use_metadata_tags",
                *meta, "-f", "mp4",
            ]  # fmt: skip
        elif fmt == "webm":
            args += [
                "-filter_complex", _music_filter(audio_offset, duration),
                "-map", "0:v:0", "-map", "[a]",
                "-frames:v", str(frames), "-r", str(fps),
                "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p",
                "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
                "-crf", "30", "-b:v", "0",
                "-c:a", "libopus", "-b:a", "160k",
                *meta, "-f", "webm",
            ]  # fmt: skip
        else:
            rate = min(fps, GIF_FPS)
            args += [
                "-filter_complex",
                f"[0:v:0]fps={rate},scale='min({GIF_MAX_WIDTH},iw)':-2:flags=lanczos,"
                "split[s0][s1];[s0]palettegen=stats_mode=diff[p];"
                "[s1][p]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle[v]",
                "-map", "[v]", "-t", f"{duration:.6f}",
                "-an", "-loop", "0", "-f", "gif",
            ]  # fmt: skip
        run_ffmpeg(args, output=out, total_seconds=duration, on_progress=on_progress)


def extract_thumbnail(
    video: Path, out: Path, *, at_seconds: float, width: int = 480
) -> None:
    """Write the frame at ``at_seconds`` (clamped into the video) as a JPEG
    ``width`` pixels wide, keeping the aspect ratio."""
    video, out = Path(video), Path(out)
    if width < 2:
        raise ValueError("The thumbnail width must be at least 2 pixels.")
    if not video.is_file():
        raise ValueError(f"Video {video.name} does not exist.")
    try:
        info = probe_media(video)
    except ProbeError as exc:
        raise ValueError(f"Video {video.name} cannot be read: {exc}") from exc
    streams = info.of_kind("video")
    if not streams:
        raise ValueError(f"Video {video.name} has no video stream.")
    # WebM keeps no per-stream duration; the container's is the fallback.
    length = streams[0].duration or info.duration or 0.0
    last = length - 1.0 / (streams[0].fps or 30.0)
    at = min(max(at_seconds, 0.0), max(last, 0.0))
    args = [
        "-ss", f"{at:.6f}",
        *input_args(video),
        "-frames:v", "1",
        "-vf", f"scale={width}:-2:flags=lanczos:out_range=pc,format=yuvj420p",
        "-c:v", "mjpeg", "-q:v", "3",
        "-f", "image2", "-update", "1",
    ]  # fmt: skip
    run_ffmpeg(args, output=out)
