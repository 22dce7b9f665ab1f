"""Speed of the renderer on a 60-second 1080p30 photo montage, against a floor
and moviepy.

    .venv/bin/python -m tests.benchmarks.bench_assembly [--runs N]
        [--moviepy-runs M] [--keep DIR]

The material is made here, deterministically, in a temporary folder: 12
photo-like JPEGs of 2400x1600 to 3000x2000 built from ``skimage.data``
pictures (single upscaled pictures, mosaics, tinted textures, with a
fine-texture layer and grain so they are not smooth upscales), a 60 s song from
the synthesizer and an SRT file of 12 cues. The timeline (output preset
"youtube", 1920x1080 at 30 fps, mp4 "standard") has 12 still clips with moves,
11 transitions of 0.5 s of 11 different types, a grade at intensity 0.8, the
subtitles and the song as music: exactly 60.0 s, 1800 frames.

Three things are timed on the same machine in the same run:

* ours: ``render_timeline`` from the timeline to the finished mp4 (decoding
  the photos, moves, transitions, grade, subtitles, audio mix and mux).
* (a) the floor: ffmpeg encoding the same frames, ready-made as raw yuv420p
  (our render decoded once to a ~5.6 GB file in the temp folder, deleted at
  the end), with exactly the renderer's encoder settings
  (``workers.assembly.encode.video_args("mp4", "standard", 30)``), no audio.
* (b) moviepy 2.2.1 making plain crossfades of the same 12 photos
  (``moviepy_crossfades.py``, in its own venv ``var/bench/moviepy-venv``,
  made from ``requirements/bench-moviepy.txt`` on first use; it cannot share
  .venv because it pins Pillow < 12), with the same ffmpeg binary, libx264
  veryfast CRF 18.

Ours and the floor alternate ``--runs`` times (default 3); moviepy runs
``--moviepy-runs`` times (default 1, it is slow; 0 skips it, which fails its
target). Medians are compared as frame rates. Exit status 0 when ours runs at
>= 0.6x the floor's frame rate and >= 5x moviepy's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from workers.assembly.encode import X264_QUALITY, video_args
from workers.assembly.ffmpeg import base_command, ffmpeg_exe
from workers.assembly.render import render_timeline
from workers.assembly.timeline import load_timeline
from workers.audio.synth import SongSpec, synthesize_song, write_wav

REPO = Path(__file__).resolve().parents[2]
MOVIEPY_VENV = REPO / "var" / "bench" / "moviepy-venv"
MOVIEPY_REQUIREMENTS = REPO / "requirements" / "bench-moviepy.txt"
MOVIEPY_SCRIPT = Path(__file__).with_name("moviepy_crossfades.py")

TARGET_VS_FLOOR = 0.6
TARGET_VS_MOVIEPY = 5.0

WIDTH, HEIGHT, FPS = 1920, 1080, 30
FORMAT, QUALITY = "mp4", "standard"
CLIP_SECONDS = 5.5  # each photo; the last one 5.0, so 12 make exactly 60 s
FADE = 0.5  # every transition
MOVES = [
    "zoom_in",
    "pan_left",
    "push_in",
    "pan_right",
    "zoom_out",
    "pan_up",
    "push_out",
    "pan_down",
]
TRANSITIONS = [
    "crossfade",
    "dip_to_black",
    "wipe_left",
    "slide_up",
    "push_right",
    "zoom_in",
    "circle_open",
    "flash",
    "whip_pan",
    "glitch",
    "luma_wipe",
]
GRADE = {"preset": "cinematic_teal_orange", "intensity": 0.8}
# 30 bars of 4/4 at 120 BPM: exactly 60 s.
SONG = SongSpec(
    bpm=120.0,
    seed=60,
    distinct_sections=True,
    sections=(("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 6), ("outro", 4)),
)
LYRICS = [
    "Morning light on the harbour wall",
    "Coffee steam and a distant call",
    "The cat asleep where the sun comes in",
    "A rocket waits for the count to begin",
    "Stars we counted, one by one",
    "Roads that end where the maps are done",
    "Engines humming down the coast",
    "Little things we loved the most",
    "Every picture, every frame",
    "Walls of brick that hold our name",
    "Far away and close again",
    "Play it back, remember when",
]


# --------------------------------------------------------------------------
# Material


def _rgb(picture: np.ndarray) -> np.ndarray:
    a = np.asarray(picture)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return np.ascontiguousarray(a[..., :3].astype(np.uint8))


def _tint(gray: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    g = _rgb(gray).astype(np.float32) / 255.0
    return np.clip(g * np.asarray(colour, np.float32) * 255.0, 0, 255).astype(np.uint8)


def _cover(
    picture: np.ndarray, w: int, h: int, focus: tuple[float, float] = (0.5, 0.5)
) -> np.ndarray:
    """``picture`` scaled (Lanczos) to cover w x h and cropped around ``focus``."""
    img = Image.fromarray(_rgb(picture))
    scale = max(w / img.width, h / img.height)
    sw, sh = max(w, round(img.width * scale)), max(h, round(img.height * scale))
    img = img.resize((sw, sh), Image.Resampling.LANCZOS)
    x = round((sw - w) * focus[0])
    y = round((sh - h) * focus[1])
    return np.asarray(img.crop((x, y, x + w, y + h)))


def _mosaic(
    cells: list[tuple[np.ndarray, int, int, int, int]], w: int, h: int
) -> np.ndarray:
    """Pictures placed at (x, y, cell w, cell h) on a w x h canvas."""
    canvas = np.zeros((h, w, 3), np.uint8)
    for picture, x, y, cw, ch in cells:
        canvas[y : y + ch, x : x + cw] = _cover(picture, cw, ch)
    return canvas


def _detail(canvas: np.ndarray, texture: np.ndarray, seed: int) -> np.ndarray:
    """Fine texture at its native scale plus grain, so an upscale is not smooth."""
    h, w = canvas.shape[:2]
    rng = np.random.default_rng(seed)
    tex = texture.astype(np.float32)
    tex = np.roll(tex, (int(rng.integers(512)), int(rng.integers(512))), (0, 1))
    reps = (h // tex.shape[0] + 1, w // tex.shape[1] + 1)
    layer = np.tile(tex, reps)[:h, :w]
    layer = (layer - layer.mean()) * 0.07
    grain = rng.normal(0.0, 2.5, (h, w)).astype(np.float32)
    out = canvas.astype(np.float32) + (layer + grain)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def _pictures() -> list[tuple[tuple[int, int], np.ndarray]]:
    """The 12 photos before detail: ((width, height), RGB array)."""
    d = skimage.data
    astronaut, coffee, chelsea = d.astronaut(), d.coffee(), d.chelsea()
    rocket, hubble, retina = d.rocket(), d.hubble_deep_field(), d.retina()
    moto, ihc = d.stereo_motorcycle()[0], d.immunohistochemistry()
    sepia = (1.08, 0.92, 0.72)
    return [
        ((2400, 1600), _cover(astronaut, 2400, 1600, (0.5, 0.3))),
        ((3000, 2000), _cover(coffee, 3000, 2000)),
        ((2400, 1600), _cover(chelsea, 2400, 1600, (0.7, 0.5))),
        ((2880, 1620), _cover(rocket, 2880, 1620, (0.5, 0.6))),
        ((2400, 1600), _cover(hubble, 2400, 1600)),
        ((2400, 1800), _cover(retina, 2400, 1800)),
        ((3000, 2000), _cover(moto, 3000, 2000)),
        ((2400, 1600), _cover(ihc, 2400, 1600)),
        (
            (2400, 1600),
            _mosaic(
                [
                    (astronaut, 0, 0, 1200, 800),
                    (coffee, 1200, 0, 1200, 800),
                    (chelsea, 0, 800, 1200, 800),
                    (rocket, 1200, 800, 1200, 800),
                ],
                2400,
                1600,
            ),
        ),
        (
            (2400, 1600),
            _mosaic(
                [
                    (_tint(d.brick(), (1.0, 0.62, 0.48)), 0, 0, 800, 800),
                    (_tint(d.grass(), (0.55, 0.95, 0.45)), 800, 0, 800, 800),
                    (_tint(d.gravel(), (0.85, 0.82, 0.78)), 1600, 0, 800, 800),
                    (_tint(d.camera(), sepia), 0, 800, 800, 800),
                    (_tint(d.moon(), (0.8, 0.85, 1.0)), 800, 800, 800, 800),
                    (_tint(d.coins(), (1.0, 0.85, 0.5)), 1600, 800, 800, 800),
                ],
                2400,
                1600,
            ),
        ),
        (
            (2400, 1600),
            _mosaic(
                [
                    (hubble, 0, 0, 1600, 1600),
                    (retina, 1600, 0, 800, 800),
                    (moto, 1600, 800, 800, 800),
                ],
                2400,
                1600,
            ),
        ),
        ((2880, 1620), _cover(_tint(d.camera(), sepia), 2880, 1620, (0.5, 0.4))),
    ]


def make_photos(folder: Path) -> list[Path]:
    d = skimage.data
    textures = [d.gravel(), d.grass(), d.brick()]
    paths = []
    for i, ((w, h), picture) in enumerate(_pictures()):
        assert picture.shape == (h, w, 3), (i, picture.shape)
        photo = _detail(picture, textures[i % len(textures)], seed=1000 + i)
        path = folder / f"photo-{i:02d}.jpg"
        Image.fromarray(photo).save(path, quality=92)
        paths.append(path)
    return paths


def make_song(folder: Path) -> Path:
    return write_wav(folder / "song.wav", synthesize_song(SONG))


def _srt_time(t: float) -> str:
    ms = round(t * 1000)
    hours, minutes, secs = ms // 3600000, ms // 60000 % 60, ms // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{ms % 1000:03d}"


def make_srt(folder: Path) -> Path:
    step = CLIP_SECONDS - FADE
    cues = []
    for i, line in enumerate(LYRICS):
        start, end = i * step + 0.4, i * step + 4.4
        cues.append(f"{i + 1}\n{_srt_time(start)} --> {_srt_time(end)}\n{line}\n")
    path = folder / "lyrics.srt"
    path.write_text("\n".join(cues), encoding="utf-8")
    return path


def timeline_document(photos: list[Path], song: Path, srt: Path) -> dict:
    step = CLIP_SECONDS - FADE
    clips = []
    for i, photo in enumerate(photos):
        last = i == len(photos) - 1
        clip: dict = {
            "source": {"kind": "still", "file": photo.name},
            "start": round(i * step, 6),
            "duration": step if last else CLIP_SECONDS,
            "move": MOVES[i % len(MOVES)],
        }
        if not last:
            clip["transition"] = {"type": TRANSITIONS[i], "duration": FADE}
        clips.append(clip)
    return {
        "version": 1,
        "output": {"preset": "youtube", "format": FORMAT, "quality": QUALITY},
        "audio": [{"file": song.name, "role": "music", "fade_out": 2.0}],
        "clips": clips,
        "grade": dict(GRADE),
        "text": [{"kind": "subtitles", "file": srt.name}],
    }


# --------------------------------------------------------------------------
# The three measurements


def render_ours(timeline, out: Path, base_dir: Path) -> tuple[float, int, float]:
    """(wall seconds, frames, the report's own seconds) of one render."""
    start = time.perf_counter()
    report = render_timeline(timeline, out, base_dir=base_dir, on_progress=None)
    seconds = time.perf_counter() - start
    if (report.width, report.height, report.fps) != (WIDTH, HEIGHT, FPS):
        raise SystemExit(f"unexpected render format: {report}")
    return seconds, report.frames, report.seconds


def decode_raw(video: Path, raw: Path) -> int:
    """Decode ``video`` to raw yuv420p; returns the number of frames."""
    subprocess.run(
        [*base_command(), "-y", "-i", str(video), "-map", "0:v:0",
         "-f", "rawvideo", "-pix_fmt", "yuv420p", str(raw)],
        check=True,
    )  # fmt: skip
    frame_bytes = WIDTH * HEIGHT * 3 // 2
    size = raw.stat().st_size
    if size % frame_bytes:
        raise SystemExit(f"{raw} is not a whole number of {WIDTH}x{HEIGHT} frames")
    return size // frame_bytes


def encode_floor(raw: Path, out: Path) -> float:
    """Seconds for ffmpeg to encode the raw frames with the renderer's settings."""
    command = [
        *base_command(), "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}",
        "-framerate", str(FPS), "-i", str(raw),
        *video_args(FORMAT, QUALITY, FPS),
        "-an", "-f", "mp4", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def moviepy_python() -> Path:
    """The moviepy venv's python, made (or updated) from the requirements."""
    python = MOVIEPY_VENV / "bin" / "python"
    wanted = hashlib.sha256(MOVIEPY_REQUIREMENTS.read_bytes()).hexdigest()
    stamp = MOVIEPY_VENV / ".requirements-sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"making the moviepy venv in {MOVIEPY_VENV} ...", flush=True)
    if not python.exists():
        MOVIEPY_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(MOVIEPY_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(MOVIEPY_REQUIREMENTS)],
        check=True,
    )  # fmt: skip
    stamp.write_text(wanted + "\n")
    return python


def run_moviepy(python: Path, photos: list[Path], out: Path) -> dict:
    env = {**os.environ, "FFMPEG_BINARY": ffmpeg_exe()}
    done = subprocess.run(
        [str(python), str(MOVIEPY_SCRIPT), "--out", str(out),
         "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS),
         "--clip", str(CLIP_SECONDS), "--fade", str(FADE), "--threads", "2",
         "--preset", X264_QUALITY[QUALITY][0], "--crf", str(X264_QUALITY[QUALITY][1]),
         *map(str, photos)],
        check=True, capture_output=True, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def ffmpeg_version() -> str:
    out = subprocess.run(
        [ffmpeg_exe(), "-version"], check=True, capture_output=True, text=True
    ).stdout
    return out.splitlines()[0] if out else "ffmpeg (unknown version)"


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_assembly")
    parser.add_argument(
        "--runs", type=int, default=3, help="timed runs of ours and of the floor"
    )
    parser.add_argument(
        "--moviepy-runs", type=int, default=1, help="timed moviepy runs (0: skip)"
    )
    parser.add_argument("--keep", type=Path, help="copy the rendered videos here")
    parser.add_argument(
        "--quality",
        choices=sorted(X264_QUALITY),
        default="standard",
        help="output quality of all three (x264 preset and CRF)",
    )
    args = parser.parse_args(argv)
    global QUALITY
    QUALITY = args.quality
    runs = max(args.runs, 1)
    python = moviepy_python() if args.moviepy_runs > 0 else None

    times: dict[str, list[float]] = {"ours": [], "floor": [], "moviepy": []}
    frames: dict[str, int] = {}
    report_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-assembly-") as tmp:
        folder = Path(tmp)
        photos = make_photos(folder)
        song = make_song(folder)
        srt = make_srt(folder)
        timeline = load_timeline(timeline_document(photos, song, srt))
        ours_out = folder / "ours.mp4"
        floor_out = folder / "floor.mp4"
        raw = folder / "raw.yuv"
        try:
            for i in range(runs):
                seconds, n, own = render_ours(timeline, ours_out, folder)
                times["ours"].append(seconds)
                report_seconds.append(own)
                frames["ours"] = n
                if i == 0:
                    frames["floor"] = decode_raw(ours_out, raw)
                times["floor"].append(encode_floor(raw, floor_out))
        finally:
            raw.unlink(missing_ok=True)
        moviepy_out = folder / "moviepy.mp4"
        moviepy_info: dict = {}
        for _ in range(args.moviepy_runs if python else 0):
            moviepy_info = run_moviepy(python, photos, moviepy_out)
            times["moviepy"].append(float(moviepy_info["seconds"]))
            frames["moviepy"] = int(moviepy_info["frames"])
        sizes = {
            name: path.stat().st_size
            for name, path in (("ours", ours_out), ("floor", floor_out))
        }
        photo_sizes = sorted({Image.open(p).size for p in photos})
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ours_out, args.keep / "bench-assembly-ours.mp4")
            if moviepy_out.exists():
                shutil.copy2(moviepy_out, args.keep / "bench-assembly-moviepy.mp4")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(
        f"\n60.0 s {WIDTH}x{HEIGHT}@{FPS} mp4 ({QUALITY}): {len(photos)} JPEG photos "
        f"({photo_sizes[0][0]}x{photo_sizes[0][1]} to "
        f"{photo_sizes[-1][0]}x{photo_sizes[-1][1]}), {len(MOVES)} kinds of move, "
        f"{len(TRANSITIONS)} transitions of {FADE} s,\n"
        f"grade {GRADE['preset']} at {GRADE['intensity']}, {len(LYRICS)} subtitle "
        f"cues, a 60 s song as music\n"
        f"{ffmpeg_version()}; {cores or os.cpu_count()} CPU cores; {runs} runs of "
        f"ours and the floor (alternating), {len(times['moviepy'])} of moviepy\n"
        f"encoder: {' '.join(video_args(FORMAT, QUALITY, FPS))}\n"
    )
    labels = {
        "ours": "ours: render_timeline (everything)",
        "floor": "(a) floor: encode the raw frames",
        "moviepy": f"(b) moviepy {moviepy_info.get('moviepy', '2')} crossfades",
    }
    head = (
        f"{'':<40} {'frames':>6} {'median s':>9} {'min s':>7} {'max s':>7} {'fps':>7}"
    )
    print(head)
    print("-" * len(head))
    fps: dict[str, float] = {}
    for name, values in times.items():
        if not values:
            print(f"{labels[name]:<40} {'(not run)':>6}")
            continue
        median = statistics.median(values)
        fps[name] = frames[name] / median
        print(
            f"{labels[name]:<40} {frames[name]:>6} {median:>9.2f} {min(values):>7.2f} "
            f"{max(values):>7.2f} {fps[name]:>7.1f}"
        )
    vs_floor = fps["ours"] / fps["floor"]
    vs_moviepy = fps["ours"] / fps["moviepy"] if "moviepy" in fps else None
    print(f"{'ratio ours / floor (frame rate)':<40} {vs_floor:>39.2f}")
    if vs_moviepy is not None:
        print(f"{'ratio ours / moviepy (frame rate)':<40} {vs_moviepy:>39.2f}")
    print(
        f"\n(render_timeline's own seconds: "
        f"{np.round(report_seconds, 2).tolist()}; ours per run "
        f"{np.round(times['ours'], 2).tolist()}, floor per run "
        f"{np.round(times['floor'], 2).tolist()}; "
        f"file sizes: ours {sizes['ours'] / 1e6:.1f} MB, "
        f"floor {sizes['floor'] / 1e6:.1f} MB)"
    )
    frames_ok = frames["ours"] == frames["floor"] == 60 * FPS
    if not frames_ok:
        print(f"\nFAIL  frame counts differ from {60 * FPS}: {frames}")
    ok_floor = vs_floor >= TARGET_VS_FLOOR
    ok_moviepy = vs_moviepy is not None and vs_moviepy >= TARGET_VS_MOVIEPY
    print(
        f"\n{'PASS' if ok_floor else 'FAIL'}  ours at {vs_floor:.2f}x the floor's "
        f"frame rate >= {TARGET_VS_FLOOR}x"
    )
    if vs_moviepy is None:
        print(f"FAIL  moviepy not run; ours vs moviepy >= {TARGET_VS_MOVIEPY}x unknown")
    else:
        print(
            f"{'PASS' if ok_moviepy else 'FAIL'}  ours at {vs_moviepy:.2f}x moviepy's "
            f"frame rate >= {TARGET_VS_MOVIEPY}x"
        )
    return 0 if ok_floor and ok_moviepy and frames_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
