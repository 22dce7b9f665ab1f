"""Render a timeline into the finished video.

How the work is split, and why::

    sources (stills: resize + sub-pixel shift per frame; video: ffmpeg decoder)
        solo frames ──────────────────────────────────────────────┐
        transition windows: blends drawn here (most kinds), or    │
          an ffmpeg [a][b] xfade per window (the rest) ───────────┤
                                                                  ▼
    encoder ffmpeg: raw frames on stdin → subtitles (libass) → watermark
        overlay → H.264 / VP9 (or an FFV1 master for GIFs)
    mixer thread, meanwhile: audio tracks → ducked, loudness-normalised WAV
    mux: picture copied + soundtrack encoded + tags + manifest → the file

Frames outside transitions go straight from their source to the encoder; a
transition window is mixed frame by frame as its two sources produce it. This
departs from DESIGN.md's "one ffmpeg filtergraph" with every clip as an
input: that shape held about 20 MB per clip inside ffmpeg (1.2 GB for a
60-clip song), converted every frame to 4:4:4 and back for xfade, and
ffmpeg's sub-pixel ``perspective`` filter alone ran at half the encoder's
speed at 1080p. Here memory is flat (a few frames per source, at most two
sources open, about 0.7 GB in all for a 3-minute 1080p render) and the
encoder is the bottleneck.

Timing is in frames: clip k covers frames [round(start·fps), round(end·fps));
a transition is the frames two clips share; the output has
round(duration·fps) frames exactly and the soundtrack is trimmed to the same
length, so picture and sound start together and end together.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from workers.assembly import encode
from workers.assembly.audio_mix import MixReport, mix_audio
from workers.assembly.blends import BLENDS, Blend
from workers.assembly.ffmpeg import (
    FFmpegProcess,
    base_command,
    input_args,
    run_ffmpeg,
)
from workers.assembly.grading import grade_filter
from workers.assembly.motion import View, move_views
from workers.assembly.sources import (
    FrameSource,
    StillSource,
    VideoSource,
    frame_bytes,
    read_frame,
)
from workers.assembly.stills import inspect_image
from workers.assembly.subtitles import (
    karaoke_ass,
    parse_srt,
    srt_to_ass,
    subtitles_filter,
    title_ass,
)
from workers.assembly.thumbnail import choose_thumbnail, haar_faces
from workers.assembly.timeline import (
    Clip,
    CustomMove,
    Grade,
    Karaoke,
    Subtitles,
    Timeline,
    TimelineError,
    Title,
)
from workers.assembly.transitions import TO_OUTPUT, join_filter

ProgressCallback = Callable[[int, int], None]  # (frames done, frames in total)

MANIFEST_KEY = "studio_manifest"
PIPE_SIZE = 1 << 20  # bytes; fewer, larger pipe writes for 3 MB frames
_F_SETPIPE_SZ = 1031  # fcntl command (Linux)
MAX_SUBTITLE_BYTES = 2 * 1024 * 1024


class RenderStopped(RuntimeError):
    """The caller asked the render to stop (``stop`` was set)."""


@dataclass(frozen=True)
class RenderReport:
    frames: int
    fps: int
    width: int
    height: int
    duration: float  # seconds: frames / fps
    format: str
    seconds: float  # wall time of the render
    joins: tuple[float, ...]  # centre of every cut and transition, in seconds
    loudness_lufs: float | None = None
    true_peak_db: float | None = None
    thumbnail_time: float | None = None


@dataclass(frozen=True)
class _Slot:
    first: int  # first frame on the output timeline
    last: int  # one past the last frame


# --------------------------------------------------------------------------
# Input files


def _resolve(timeline: Timeline, base_dir: Path) -> dict[str, Path]:
    """Every file the timeline names, as a checked absolute path."""
    named: list[tuple[str, str]] = [
        (f"clips[{i}].source.file", c.source.file) for i, c in enumerate(timeline.clips)
    ]
    named += [(f"audio[{i}].file", a.file) for i, a in enumerate(timeline.audio)]
    if timeline.grade is not None and timeline.grade.cube:
        named.append(("grade.cube", timeline.grade.cube))
    named += [
        (f"clips[{i}].grade.cube", c.grade.cube)
        for i, c in enumerate(timeline.clips)
        if c.grade is not None and c.grade.cube
    ]
    named += [
        (f"text[{i}].file", t.file)
        for i, t in enumerate(timeline.text)
        if isinstance(t, Subtitles)
    ]
    watermark = timeline.watermark
    if watermark is not None:
        named.append(("watermark.file", watermark.file))
    found: dict[str, Path] = {}
    errors = []
    for field, name in named:
        path = Path(name) if Path(name).is_absolute() else base_dir / name
        if not path.is_file():
            errors.append((field, f"no such file: {name}"))
        else:
            found[name] = path.absolute()
    if errors:
        raise TimelineError(errors)
    return found


# --------------------------------------------------------------------------
# Frame plan


def _slots(timeline: Timeline) -> list[_Slot]:
    """Each clip's frames. Ends are rounded to frames and each transition
    keeps its own length in frames (at least one), so a short transition is
    never rounded away and windows never disagree with the clips."""
    fps = timeline.fps
    slots: list[_Slot] = []
    for k, clip in enumerate(timeline.clips):
        if k == 0:
            first = 0
        else:
            prev = timeline.clips[k - 1]
            shared = 0 if not prev.overlap else max(1, round(prev.overlap * fps))
            first = slots[-1].last - shared
        last = max(first + 1, round(clip.end * fps))
        slots.append(_Slot(first, last))
    for k, slot in enumerate(slots):
        shared = _window(slots, k) + (_window(slots, k - 1) if k else 0)
        if shared > slot.last - slot.first:
            raise TimelineError(
                [(f"clips[{k}].transition.duration", "leaves the clip no frames")]
            )
    return slots


def _window(slots: Sequence[_Slot], k: int) -> int:
    """Frames clip k shares with clip k + 1."""
    if k + 1 >= len(slots):
        return 0
    return max(0, slots[k].last - slots[k + 1].first)


def _joins(timeline: Timeline, slots: Sequence[_Slot]) -> tuple[float, ...]:
    fps = timeline.fps
    return tuple(
        (slots[k + 1].first + _window(slots, k) / 2) / fps
        for k in range(len(slots) - 1)
    )


def _source(
    clip: Clip,
    frames: int,
    timeline: Timeline,
    files: dict[str, Path],
    grade: str | None,
) -> FrameSource:
    out = timeline.output
    size = (out.width, out.height)
    path = files[clip.source.file]
    if clip.source.kind == "video":
        return VideoSource(
            path,
            size,
            out.fps,
            frames,
            start=clip.in_,
            speed=clip.speed,
            grade=grade,
        )
    info = inspect_image(path)
    image = (info.width, info.height)
    focus = clip.focus or (0.5, 0.5)
    move: str | tuple[View, View] | None
    if isinstance(clip.move, CustomMove):
        a, b = clip.move.start, clip.move.end
        move = (View(a.x, a.y, a.zoom), View(b.x, b.y, b.zoom))
    else:
        move = clip.move
    views = move_views(move, image, size, focus, clip.strength)
    named = clip.move if isinstance(clip.move, str) else None
    return StillSource.for_move(
        path, size, frames, views, move=named, grade=grade, info=info
    )


# --------------------------------------------------------------------------
# Processes


def _set_pipe_size(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
    except (ImportError, OSError):
        pass  # a smaller pipe is only slower


def _raw_input(fd: int | str, width: int, height: int, fps: int) -> list[str]:
    return [
        "-protocol_whitelist", "pipe",
        "-f", "rawvideo", "-pix_fmt", "yuv420p",
        "-video_size", f"{width}x{height}", "-framerate", str(fps),
        "-nofind_stream_info",
        "-i", f"pipe:{fd}",
    ]  # fmt: skip


class _Prefetch:
    """A source's ``prepare`` run on a thread; ``join`` re-raises its error
    in the caller's thread (where it becomes the render's clear message)."""

    def __init__(self, source: FrameSource) -> None:
        self.error: BaseException | None = None
        prepare = getattr(source, "prepare", None)

        def run() -> None:
            try:
                if prepare is not None:
                    prepare()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


class _Encoder:
    """The final ffmpeg: raw frames in on stdin, the delivery file out."""

    def __init__(
        self,
        cmd: list[str],
        total: int,
        on_progress: ProgressCallback | None,
        frame_scale: float = 1.0,  # input frames per frame it counts (GIF: fewer)
    ):
        self.process = FFmpegProcess(cmd)
        stdin = self.process.proc.stdin
        assert stdin is not None
        _set_pipe_size(stdin.fileno())  # 3 MB frames: fewer, larger writes
        stdout = self.process.proc.stdout
        assert stdout is not None

        self.callback_error: BaseException | None = None

        def follow() -> None:
            # Keeps draining ffmpeg's progress even if the callback fails: a
            # full pipe would stall the encoder and the whole render with it.
            for raw in stdout:
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key == "frame" and value.isdigit():
                    done = min(round(int(value) * frame_scale), total)
                    if on_progress and self.callback_error is None:
                        try:
                            on_progress(done, total)
                        except BaseException as exc:
                            self.callback_error = exc

        self._progress = threading.Thread(target=follow, daemon=True)
        self._progress.start()

    def write(self, frame: np.ndarray) -> None:
        stdin = self.process.proc.stdin
        assert stdin is not None
        try:
            stdin.write(frame.data)
        except (BrokenPipeError, ValueError):
            raise self.process.failure("encoding") from None

    def finish(self) -> None:
        stdin = self.process.proc.stdin
        assert stdin is not None
        try:
            stdin.close()
        except BrokenPipeError:
            pass
        if self.process.proc.wait() != 0:
            raise self.process.failure("encoding")
        self._progress.join(timeout=5)
        if self.callback_error is not None:
            raise self.callback_error


def _blend_window(
    a: FrameSource,
    b: FrameSource,
    frames: int,
    blend: Blend,
    size: tuple[int, int],
    emit: Callable[[np.ndarray], None],
    limit: int,
) -> None:
    """A transition drawn in-process (``blends``), frame by frame."""
    fa = np.empty(frame_bytes(size), dtype=np.uint8)
    fb = np.empty_like(fa)
    out = np.empty_like(fa)
    for i in range(frames):
        a.read_into(fa)
        b.read_into(fb)
        if i < limit:
            blend(fa, fb, (i + 0.5) / frames, size, out)
            emit(out)


def _join(
    a: FrameSource,
    b: FrameSource,
    frames: int,
    transition: str,
    size: tuple[int, int],
    fps: int,
    emit: Callable[[np.ndarray], None],
    limit: int,
) -> None:
    """Render a transition window: ``frames`` frames of ``a`` blended into
    the first ``frames`` of ``b``, streamed to ``emit`` (only the first
    ``limit`` frames are used).

    Window frame i is ``(i + 0.5) / frames`` of the way from a to b, so every
    frame of the window is a mix and the window is centred on its cut. Blend
    kinds are drawn here; the others run through xfade in a small ffmpeg fed
    by two pipes. xfade weighs frame k by k / n, all of a at k = 0, so it is
    given one frame more (each clip's first frame twice) and its first output
    is dropped: frame i then weighs (i + 1) / (frames + 1), centred the same.
    """
    blend = BLENDS.get(transition)
    if blend is not None:
        _blend_window(a, b, frames, blend, size, emit, limit)
        return
    width, height = size
    fds = [os.pipe(), os.pipe()]
    for _, w in fds:
        _set_pipe_size(w)
    graph = join_filter(
        transition, (frames + 1) / fps, 0.0, "0:v", "1:v", "j", fps, width, height
    )
    cmd = [
        *base_command(),
        *_raw_input(fds[0][0], width, height, fps),
        *_raw_input(fds[1][0], width, height, fps),
        "-filter_complex", f"{graph};[j]{TO_OUTPUT}[v]",
        "-map", "[v]", "-frames:v", str(frames + 1),
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1",
    ]  # fmt: skip
    try:
        process = FFmpegProcess(cmd, pass_fds=[r for r, _ in fds])
    except BaseException:
        for _, w in fds:
            os.close(w)
        raise
    finally:
        for r, _ in fds:
            os.close(r)
    errors: list[BaseException] = []

    def feed(source: FrameSource, fd: int) -> None:
        buf = np.empty(frame_bytes(size), dtype=np.uint8)
        try:
            with os.fdopen(fd, "wb", buffering=0) as pipe:
                for i in range(frames):
                    source.read_into(buf)
                    pipe.write(buf.data)
                    if i == 0:
                        pipe.write(buf.data)  # the extra leading frame
        except BrokenPipeError:
            pass  # ffmpeg stopped reading; its own error explains why
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    feeders = [
        threading.Thread(target=feed, args=(src, w), daemon=True)
        for src, (_, w) in zip((a, b), fds, strict=True)
    ]
    for t in feeders:
        t.start()
    try:
        out = np.empty(frame_bytes(size), dtype=np.uint8)
        stdout = process.proc.stdout
        assert stdout is not None
        for n in range(frames + 1):
            if not read_frame(stdout, out):
                for t in feeders:
                    t.join()
                if errors:
                    raise errors[0]
                raise process.failure(f"the {transition} transition")
            if 0 < n <= limit:
                emit(out)
        for t in feeders:
            t.join()
        if errors:
            raise errors[0]
        if process.proc.wait() != 0:
            raise process.failure(f"the {transition} transition")
    finally:
        process.kill()
        for t in feeders:
            t.join(timeout=5)


# --------------------------------------------------------------------------
# Text, watermark, metadata


def _text_filters(
    timeline: Timeline, files: dict[str, Path], workdir: Path
) -> list[str]:
    """One libass filter per text item, each with its own script."""
    w, h = timeline.output.width, timeline.output.height
    filters = []
    for i, item in enumerate(timeline.text):
        if isinstance(item, Subtitles):
            path = files[item.file]
            if path.stat().st_size > MAX_SUBTITLE_BYTES:
                raise TimelineError([(f"text[{i}].file", "is larger than 2 MB")])
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise TimelineError(
                    [(f"text[{i}].file", f"is not UTF-8 text: {exc}")]
                ) from exc
            if path.suffix.lower() == ".ass":
                script = text
            else:
                try:
                    script = srt_to_ass(parse_srt(text), w, h)
                except ValueError as exc:
                    raise TimelineError([(f"text[{i}].file", str(exc))]) from exc
        elif isinstance(item, Title):
            script = title_ass(
                item.text, item.start, item.end, item.position, w, h, item.style
            )
        elif isinstance(item, Karaoke):
            script = karaoke_ass([item.words], w, h, item.style, position=item.position)
        else:  # pragma: no cover - the timeline has no other kinds
            raise TypeError(f"unknown text item {item!r}")
        ass = workdir / f"text-{i}.ass"
        ass.write_text(script, encoding="utf-8")
        filters.append(subtitles_filter(ass))
    return filters


_CORNERS = {
    "top_left": ("{m}", "{m}"),
    "top_right": ("main_w-overlay_w-{m}", "{m}"),
    "bottom_left": ("{m}", "main_h-overlay_h-{m}"),
    "bottom_right": ("main_w-overlay_w-{m}", "main_h-overlay_h-{m}"),
    "center": ("(main_w-overlay_w)/2", "(main_h-overlay_h)/2"),
}


def _watermark_input(timeline: Timeline, files: dict[str, Path]) -> list[str]:
    wm = timeline.watermark
    if wm is None:
        return []
    path = files[wm.file]
    info = inspect_image(path)
    options = ["-c:v", info.decoder] if info.decoder else []
    return input_args(path, fmt="image2", options=options)


def _watermark_graph(timeline: Timeline, index: int, base: str, out: str) -> str:
    wm = timeline.watermark
    assert wm is not None
    width = timeline.output.width
    w = max(2, round(width * wm.width / 2) * 2)
    m = round(width * wm.margin)
    x, y = (c.format(m=m) for c in _CORNERS[wm.position])
    return (
        f"[{index}:v]format=rgba,scale={w}:-2:flags=lanczos,"
        f"colorchannelmixer=aa={wm.opacity:.4f}[wm];"
        f"[{base}][wm]overlay=x={x}:y={y}:format=yuv420:eof_action=repeat[{out}]"
    )


def _manifest(timeline: Timeline, extra: dict[str, Any] | None) -> str:
    data: dict[str, Any] = dict(timeline.manifest or {})
    if extra:
        data.update(extra)
    data.setdefault("timeline_version", timeline.version)
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _tags(tags: dict[str, str] | None) -> list[str]:
    args: list[str] = []
    for key, value in (tags or {}).items():
        if not key.isidentifier() or key == MANIFEST_KEY:
            raise ValueError(f"Tag name {key!r} is not a plain name.")
        if "\0" in value:
            raise ValueError(f"Tag {key!r} contains a NUL character.")
        args += ["-metadata", f"{key}={value}"]
    return args


# --------------------------------------------------------------------------
# The render


def _encoder_command(
    timeline: Timeline,
    target: Path,
    *,
    total: int,
    text: list[str],
    files: dict[str, Path],
) -> list[str]:
    """The encoder: raw frames on stdin, the picture (no sound, no tags)
    into ``target``, in the delivery format (an FFV1 master for GIFs)."""
    out = timeline.output
    fmt = out.format
    args = [
        *base_command(),
        "-progress", "pipe:1", "-nostats", "-y",
        *_raw_input(0, out.width, out.height, out.fps),
    ]  # fmt: skip
    index = 1
    wm_args = _watermark_input(timeline, files)
    args += wm_args
    chain = [
        "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
        *text,
    ]
    graph = f"[0:v]{','.join(chain)}[base]"
    last = "base"
    if wm_args:
        graph += ";" + _watermark_graph(timeline, index, last, "marked")
        last = "marked"
    if fmt == "gif":
        rate = min(out.fps, encode.GIF_FPS)
        graph += (
            f";[{last}]fps={rate},"
            f"scale='min({encode.GIF_MAX_WIDTH},iw)':-2:flags=lanczos,format=yuv444p[v]"
        )
    else:
        graph += f";[{last}]format=yuv420p[v]"
    args += ["-filter_complex", graph, "-map", "[v]", "-an"]
    args += ["-frames:v", str(total), "-map_metadata", "-1", "-map_chapters", "-1"]
    if fmt == "gif":
        # An intermediate for the two palette passes (see _gif_from_master).
        return [*args, "-c:v", "ffv1", "-f", "matroska", str(target)]
    args += encode.video_args(fmt, out.quality, out.fps)
    return [*args, "-f", fmt, str(target)]


_DEMUXER = {"mp4": "mov", "webm": "matroska"}


def _mux(
    video: Path,
    soundtrack: Path | None,
    out: Path,
    fmt: str,
    *,
    tags: list[str],
    manifest: str,
) -> None:
    """The delivery file: the encoded picture copied as it is, the
    soundtrack encoded beside it, the tags and manifest, the index in front.

    The soundtrack is mixed while the picture renders, so the two meet here
    rather than in the encoder. (Handing the encoder both with -shortest also
    made it hold up to 10 s of raw frames, about 1 GB at 1080p, in its sync
    queue.) The soundtrack is exactly as long as the frames.
    """
    args = input_args(video, fmt=_DEMUXER[fmt])
    if soundtrack is not None:
        args += input_args(soundtrack, fmt="wav")
    args += ["-map", "0:v:0", "-c:v", "copy"]
    if soundtrack is not None:
        args += ["-map", "1:a:0", *encode.audio_args(fmt)]
    args += ["-map_metadata", "-1", "-map_chapters", "-1"]
    args += [*tags, "-metadata", f"{MANIFEST_KEY}={manifest}"]
    run_ffmpeg([*args, *encode.container_args(fmt)], output=out)


def _gif_from_master(master: Path, out: Path, workdir: Path) -> None:
    """Two passes: one palette for the whole clip, then dithered frames."""
    palette = workdir / "palette.png"
    run_ffmpeg(
        [
            *input_args(master, fmt="matroska"),
            "-vf",
            "palettegen=stats_mode=full:max_colors=256",
            "-frames:v",
            "1",
            "-f",
            "image2",
            "-update",
            "1",
        ],  # fmt: skip
        output=palette,
    )
    run_ffmpeg(
        [
            *input_args(master, fmt="matroska"),
            *input_args(palette, fmt="image2", options=["-c:v", "png"]),
            "-filter_complex",
            "[0:v][1:v]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle",
            *encode.container_args("gif"),
        ],
        output=out,
    )


def _soundtrack(
    timeline: Timeline, files: dict[str, Path], duration: float, workdir: Path
) -> tuple[Path | None, MixReport | None]:
    if not timeline.audio or timeline.output.format == "gif":
        return None, None
    tracks = [replace(t, file=str(files[t.file])) for t in timeline.audio]
    wav = workdir / "soundtrack.wav"
    report = mix_audio(
        tracks,
        wav,
        duration=duration,
        target_lufs=timeline.output.loudness,
        true_peak_db=timeline.output.true_peak,
        sample_rate=encode.AUDIO_RATE,
    )
    return wav, report


def _grade(grade: Grade | None, files: dict[str, Path], workdir: Path) -> str | None:
    """The filtergraph fragment of a grade (the timeline's, or a clip's own)."""
    g = grade
    if g is None:
        return None
    what: str | Path = g.preset if g.preset is not None else files[str(g.cube)]
    fragment = grade_filter(what, g.intensity, workdir)
    return None if fragment == "null" else fragment


def render_timeline(
    timeline: Timeline,
    out: Path,
    *,
    base_dir: Path | None = None,
    on_progress: ProgressCallback | None = None,
    thumbnail: Path | None = None,
    manifest: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    stop: threading.Event | None = None,
) -> RenderReport:
    """Render ``timeline`` to ``out``; its relative file names are under
    ``base_dir`` (default: the current directory).

    ``on_progress(done, total)`` is called with frames encoded so far.
    ``tags`` are plain container tags (``title``, ``comment``...). Setting
    ``stop`` (from another thread) ends the render at the next frame with
    RenderStopped, leaving nothing behind.
    ``manifest`` entries are added to the timeline's own manifest block and
    embedded as the container tag ``studio_manifest`` (JSON; not in GIFs,
    which have no tags). With ``thumbnail``, a JPEG of the best frame (by
    sharpness, exposure, colour and a well-placed face, away from
    transitions) is written there.

    Raises TimelineError when a named file is missing (naming the field),
    ValueError naming the file when one cannot be read, FFmpegError when
    ffmpeg fails. ``out`` only appears when everything
    succeeded; nothing partial is left behind.
    """
    started = time.perf_counter()
    out = Path(out)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    files = _resolve(timeline, base)
    o = timeline.output
    size = (o.width, o.height)
    total = round(timeline.duration * o.fps)
    if total < 1:
        raise TimelineError([("output.duration", "is shorter than one frame")])
    slots = _slots(timeline)
    total = min(total, slots[-1].last)  # output.duration may not add a frame
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".render-", dir=out.parent))
    encoder: _Encoder | None = None
    sources: dict[int, FrameSource] = {}
    picture = work / ("gif-master.mkv" if o.format == "gif" else f"video.{o.format}")
    mixed: dict[str, Any] = {}

    def mix() -> None:
        try:
            mixed["result"] = _soundtrack(timeline, files, total / o.fps, work)
        except BaseException as exc:  # re-raised in the render's thread
            mixed["error"] = exc

    mixer = threading.Thread(target=mix, name="soundtrack", daemon=True)
    pending: _Prefetch | None = None
    try:
        grade = _grade(timeline.grade, files, work)
        text = _text_filters(timeline, files, work)
        mixer.start()

        def source(k: int) -> FrameSource:
            if k not in sources:
                clip = timeline.clips[k]
                frames = slots[k].last - slots[k].first
                own = _grade(clip.grade, files, work) if clip.grade else grade
                sources[k] = _source(clip, frames, timeline, files, own)
            return sources[k]

        def prefetch(k: int) -> _Prefetch | None:
            # Decode the next still on the other core while this clip plays.
            if k >= len(slots) or slots[k].first >= total:
                return None
            return _Prefetch(source(k))

        gif_rate = min(o.fps, encode.GIF_FPS)
        encoder = _Encoder(
            _encoder_command(timeline, picture, total=total, text=text, files=files),
            total,
            on_progress,
            frame_scale=o.fps / gif_rate if o.format == "gif" else 1.0,
        )

        encoder_write = encoder.write

        def emit(frame: np.ndarray) -> None:
            if stop is not None and stop.is_set():
                raise RenderStopped("the render was stopped")
            encoder_write(frame)

        frame = np.empty(frame_bytes(size), dtype=np.uint8)
        pending = prefetch(0)
        for k, slot in enumerate(slots):
            if slot.first >= total:
                break
            if pending is not None:
                pending.join()
            src = source(k)
            pending = prefetch(k + 1)
            solo_from = slots[k - 1].last if k > 0 else 0
            window = _window(slots, k)
            solo_to = min(slot.last - window, total)
            for _ in range(max(0, solo_to - solo_from)):
                src.read_into(frame)
                emit(frame)
            clip = timeline.clips[k]
            if window and slots[k + 1].first < total:
                assert clip.transition is not None
                if pending is not None:
                    pending.join()
                    pending = None
                _join(
                    src,
                    source(k + 1),
                    window,
                    clip.transition.type,
                    size,
                    o.fps,
                    emit,
                    total - slots[k + 1].first,
                )
            src.close()
            del sources[k]
        if pending is not None:
            pending.join()
            pending = None
        encoder.finish()
        mixer.join()
        if "error" in mixed:
            raise mixed["error"]
        soundtrack, mix_report = mixed["result"]
        if o.format == "gif":
            _gif_from_master(picture, out, work)
        else:
            _mux(
                picture,
                soundtrack,
                out,
                o.format,
                tags=_tags(tags),
                manifest=_manifest(timeline, manifest),
            )
    except BaseException:
        if encoder is not None:
            encoder.process.kill()
        raise
    finally:
        if pending is not None:
            pending.thread.join()  # before closing: it may be starting a decoder
        for src in sources.values():
            src.close()
        if encoder is not None:
            encoder.process.kill()  # closes its pipes; a no-op once it exited
        if mixer.is_alive():
            mixer.join()  # its ffmpeg runs are short; let it finish its files
        shutil.rmtree(work, ignore_errors=True)
    if on_progress:
        on_progress(total, total)
    joins = _joins(timeline, slots)
    thumb_time = None
    if thumbnail is not None:
        try:
            choice = choose_thumbnail(
                out, Path(thumbnail), avoid=joins, face_boxes=haar_faces
            )
        except BaseException:
            out.unlink(missing_ok=True)  # all or nothing
            raise
        thumb_time = choice.time
    return RenderReport(
        frames=total,
        fps=o.fps,
        width=o.width,
        height=o.height,
        duration=total / o.fps,
        format=o.format,
        seconds=time.perf_counter() - started,
        joins=joins,
        loudness_lufs=mix_report.integrated_lufs if mix_report else None,
        true_peak_db=mix_report.true_peak_db if mix_report else None,
        thumbnail_time=thumb_time,
    )
