"""Run the ffmpeg binary safely: argument lists (never a shell), progress from
``-progress pipe:1``, and an atomic output that only appears when ffmpeg succeeds."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import imageio_ffmpeg

# Enough of stderr to show the actual error without dumping the whole log.
_STDERR_TAIL_LINES = 12
_STDERR_TAIL_CHARS = 1500


class FFmpegError(RuntimeError):
    """ffmpeg failed; the message carries the useful tail of its stderr."""


def base_command(loglevel: str = "error") -> list[str]:
    """The start of every ffmpeg call: quiet banner, never reading stdin."""
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", loglevel]


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary: ``STUDIO_FFMPEG`` if set, else imageio-ffmpeg's."""
    override = os.environ.get("STUDIO_FFMPEG", "").strip()
    return override or imageio_ffmpeg.get_ffmpeg_exe()


def input_args(
    path: str | Path, *, fmt: str | None = None, options: Iterable[str] = ()
) -> list[str]:
    """``-i`` arguments for a local file, restricted to the file protocol.

    A forced format stops ffmpeg from guessing, so a crafted file cannot be
    read as a playlist or another demuxer that follows references.
    """
    args = ["-protocol_whitelist", "file"]
    if fmt == "image2":
        args += ["-f", "image2", "-pattern_type", "none"]
    elif fmt:
        args += ["-f", fmt]
    # Absolute, because a relative name starting with "-" would read as an option.
    return [*args, *options, "-i", str(Path(path).absolute())]


# Demuxers that follow references to other files or URLs: never forced onto an
# upload, and refused when probing finds one.
_REFERENCE_DEMUXERS = frozenset({"hls", "dash", "concat", "ffconcat", "tee", "lavfi"})


def demuxer_name(format_name: str) -> str | None:
    """The ``-f`` name for a PyAV/FFmpeg format name such as "mov,mp4,m4a,…".

    None for demuxers that read other files, which an upload must not be.
    """
    name = format_name.split(",")[0].strip()
    return None if not name or name in _REFERENCE_DEMUXERS else name


def stderr_tail(text: str | Iterable[str]) -> str:
    lines = text.splitlines() if isinstance(text, str) else list(text)
    lines = [line.rstrip() for line in lines if line.strip()]
    tail = "\n".join(lines[-_STDERR_TAIL_LINES:])
    return tail[-_STDERR_TAIL_CHARS:]


def temp_output(output: Path) -> Path:
    # Same folder so the final rename is atomic; same suffix so ffmpeg still
    # infers the muxer from the name.
    fd, name = tempfile.mkstemp(
        prefix=f".{output.stem}.", suffix=f".part{output.suffix}", dir=output.parent
    )
    os.close(fd)
    return Path(name)


def _parse_out_time(key: str, value: str) -> float | None:
    # ffmpeg reports out_time_ms in microseconds too (a long-standing quirk).
    if key in ("out_time_us", "out_time_ms"):
        try:
            return int(value) / 1_000_000
        except ValueError:
            return None  # "N/A" before the first packet
    return None


def run_ffmpeg(
    args: list[str],
    *,
    output: Path,
    total_seconds: float | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Run ffmpeg with ``args`` (everything but the output path) writing ``output``.

    ffmpeg writes to a temporary name next to ``output`` that is renamed onto it
    only on success, so a failed or interrupted run never leaves a partial file.
    ``on_progress`` gets a non-decreasing fraction in [0, 1] of ``total_seconds``
    and 1.0 once the output is in place.

    Raises FFmpegError when ffmpeg cannot start, exits non-zero or produces no
    output. KeyboardInterrupt and SystemExit are re-raised unchanged after the
    process is killed and the temporary file removed, so a user's interrupt is
    never mistaken for a media error.
    """
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_output(output)
    except OSError as exc:
        raise FFmpegError(f"cannot write to {output.parent}: {exc}") from exc
    # -y because the temporary name was created (empty) to reserve it.
    cmd = [
        *base_command(),
        "-progress",
        "pipe:1",
        "-nostats",
        "-y",
        *args,
        str(temp),
    ]
    stderr_lines: deque[str] = deque(maxlen=200)
    proc: subprocess.Popen[str] | None = None
    try:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
        except OSError as exc:
            raise FFmpegError(f"could not start ffmpeg ({cmd[0]}): {exc}") from exc
        # stderr is drained on its own thread so a chatty ffmpeg never blocks
        # on a full pipe while we read progress from stdout.
        assert proc.stderr is not None and proc.stdout is not None
        drain = threading.Thread(
            target=lambda s=proc.stderr: stderr_lines.extend(s), daemon=True
        )
        drain.start()
        reported = 0.0
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            seconds = _parse_out_time(key, value)
            if seconds is None or not on_progress or not total_seconds:
                continue
            # 1.0 is kept for "output in place", reported after the rename.
            fraction = min(max(seconds / total_seconds, 0.0), 0.999)
            if fraction > reported:
                reported = fraction
                on_progress(fraction)
        returncode = proc.wait()
        drain.join()
        if returncode != 0:
            detail = stderr_tail(stderr_lines) or f"exit status {returncode}"
            raise FFmpegError(f"ffmpeg failed: {detail}")
        if temp.stat().st_size == 0:
            detail = stderr_tail(stderr_lines) or "no frames or samples were written"
            raise FFmpegError(f"ffmpeg produced an empty file: {detail}")
        os.replace(temp, output)
    except BaseException as exc:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        temp.unlink(missing_ok=True)
        if isinstance(exc, FFmpegError | KeyboardInterrupt | SystemExit):
            raise
        raise FFmpegError(f"ffmpeg run aborted: {exc}") from exc
    if on_progress:
        on_progress(1.0)


class FFmpegProcess:
    """A child ffmpeg streaming through pipes; the tail of its stderr is kept
    for error messages."""

    def __init__(
        self, cmd: list[str], *, pass_fds: Sequence[int] = (), stdin: bool = True
    ) -> None:
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=tuple(pass_fds),
                bufsize=0,
            )
        except OSError as exc:
            raise FFmpegError(f"could not start ffmpeg ({cmd[0]}): {exc}") from exc
        self.stderr: deque[str] = deque(maxlen=60)
        err = self.proc.stderr
        assert err is not None
        self._drain = threading.Thread(
            target=lambda: self.stderr.extend(
                line.decode("utf-8", "replace") for line in err
            ),
            daemon=True,
        )
        self._drain.start()

    def failure(self, what: str) -> FFmpegError:
        self.proc.wait()
        self._drain.join(timeout=5)
        detail = stderr_tail(self.stderr) or f"exit status {self.proc.returncode}"
        return FFmpegError(f"{what} failed: {detail}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        # The drain thread ends at EOF now that ffmpeg is gone; closing its
        # pipe under it could hand the fd number to someone else's pipe.
        self._drain.join(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
