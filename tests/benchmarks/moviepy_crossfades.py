"""The moviepy 2 baseline of ``bench_assembly``: plain crossfades of photos.

Runs in its own venv (moviepy 2.2.1 pins Pillow < 12; the project uses 13),
which ``bench_assembly`` makes from ``requirements/bench-moviepy.txt``:

    var/bench/moviepy-venv/bin/python tests/benchmarks/moviepy_crossfades.py \\
        --out crossfades.mp4 a.jpg b.jpg ...

Each photo becomes an ``ImageClip`` resized to cover the frame and cropped to
it (both done once per photo by moviepy, not per frame). Clip ``i`` starts at
``i * (clip - fade)`` and lasts ``clip`` seconds, the last one ``clip - fade``,
so 12 photos of 5.5 s overlapping by 0.5 s make exactly 60 s. Every photo but
the first fades in over the one below it (``vfx.CrossFadeIn``; a
``CrossFadeOut`` on the outgoing photo as well would dip the middle of each
fade towards the black background, so it is left out). The composite is
written with libx264 (by default veryfast, CRF 18: the studio's "standard";
the benchmark passes the preset and CRF of the quality it measures),
yuv420p, no audio, 2 threads. moviepy does not move the photos (no Ken
Burns) nor grade them.

The last stdout line is JSON: {"seconds": wall time from loading the photos to
the written file, "frames": frames in the file, "fps": frames / seconds, ...}.
Set ``FFMPEG_BINARY`` to choose moviepy's ffmpeg (the benchmark passes the
studio's own).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import time

import imageio_ffmpeg
from moviepy import CompositeVideoClip, ImageClip, vfx
from moviepy.config import FFMPEG_BINARY


def cover(path: str, width: int, height: int) -> ImageClip:
    """The photo scaled to cover width x height, centre-cropped to it."""
    clip = ImageClip(path)
    w, h = clip.size
    scale = max(width / w, height / h)
    size = (max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale)))
    clip = clip.resized(new_size=size)
    return clip.cropped(
        x_center=size[0] / 2, y_center=size[1] / 2, width=width, height=height
    )


def render(
    photos: list[str],
    out: str,
    *,
    width: int,
    height: int,
    fps: int,
    clip_seconds: float,
    fade: float,
    threads: int,
    preset: str = "veryfast",
    crf: int = 18,
) -> None:
    step = clip_seconds - fade
    clips = []
    for i, path in enumerate(photos):
        last = i == len(photos) - 1
        clip = cover(path, width, height)
        clip = clip.with_start(i * step).with_duration(step if last else clip_seconds)
        if i:
            clip = clip.with_effects([vfx.CrossFadeIn(fade)])
        clips.append(clip)
    video = CompositeVideoClip(clips, size=(width, height), bg_color=(0, 0, 0))
    video.write_videofile(
        out,
        fps=fps,
        codec="libx264",
        preset=preset,
        ffmpeg_params=["-crf", str(crf), "-pix_fmt", "yuv420p"],
        audio=False,
        threads=threads,
        logger=None,
    )
    video.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--clip", type=float, default=5.5, help="seconds a photo")
    parser.add_argument("--fade", type=float, default=0.5, help="seconds a fade")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="veryfast", help="x264 preset")
    parser.add_argument("--crf", type=int, default=18)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    render(
        args.photos,
        args.out,
        width=args.width,
        height=args.height,
        fps=args.fps,
        clip_seconds=args.clip,
        fade=args.fade,
        threads=args.threads,
    )
    seconds = time.perf_counter() - start
    frames, _ = imageio_ffmpeg.count_frames_and_secs(args.out)
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "frames": frames,
                "fps": round(frames / seconds, 3),
                # moviepy.__version__ of 2.2.1 still says 2.1.2.
                "moviepy": importlib.metadata.version("moviepy"),
                "ffmpeg": FFMPEG_BINARY,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
