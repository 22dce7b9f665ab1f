"""Speed of the whole music analysis on a 3-minute MP3, decode included.

    .venv/bin/python -m tests.benchmarks.bench_audio_speed [--runs N]

A 3-minute song from the synthesizer is encoded to MP3 (192 kb/s, LAME) by
imageio-ffmpeg's ffmpeg. After one warm-up of each (numba compiles librosa's
beat tracker on first use), ``analyze_audio`` and plain ``librosa.load`` +
``librosa.beat.beat_track`` alternate on the same file; the medians are
printed side by side. Exit status 0 when analyze_audio's median is within
the target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import librosa
import numpy as np

from workers.assembly.ffmpeg import ffmpeg_exe
from workers.audio.analysis import analyze_audio
from workers.audio.synth import SongSpec, synthesize_song, write_wav

TARGET_SECONDS = 1.5
# 90 bars of 4/4 at 120 BPM: exactly 3 minutes.
SONG = SongSpec(
    bpm=120.0,
    seed=2026,
    distinct_sections=True,
    sections=(
        ("intro", 8),
        ("verse", 16),
        ("chorus", 16),
        ("verse", 16),
        ("chorus", 16),
        ("bridge", 8),
        ("outro", 10),
    ),  # fmt: skip
)


def make_mp3(folder: Path) -> Path:
    wav = write_wav(folder / "three-minutes.wav", synthesize_song(SONG))
    mp3 = folder / "three-minutes.mp3"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame",
         "-b:a", "192k", str(mp3)],
        check=True,
    )  # fmt: skip
    return mp3


def ours(path: Path) -> None:
    analyze_audio(path)


def plain_librosa(path: Path) -> None:
    y, sr = librosa.load(path)
    librosa.beat.beat_track(y=y, sr=sr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_audio_speed"
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (>=5)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    runs = max(args.runs, 5)
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = make_mp3(Path(tmp))
        result = analyze_audio(mp3)  # warm-up, and a look at what it found
        plain_librosa(mp3)
        times: dict[str, list[float]] = {"analyze_audio": [], "librosa": []}
        for _ in range(runs):
            for name, fn in (("analyze_audio", ours), ("librosa", plain_librosa)):
                start = time.perf_counter()
                fn(mp3)
                times[name].append(time.perf_counter() - start)
        size = mp3.stat().st_size
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(
        f"{result.duration:.1f} s MP3 ({size / 1e6:.1f} MB, 192 kb/s), "
        f"{cores or os.cpu_count()} CPU cores, {runs} runs each after one warm-up\n"
    )
    head = f"{'':<44} {'median s':>9} {'min s':>7} {'max s':>7}"
    print(head)
    print("-" * len(head))
    labels = {
        "analyze_audio": "analyze_audio (decode + everything)",
        "librosa": "librosa.load + beat_track (beats only)",
    }
    for name, values in times.items():
        print(
            f"{labels[name]:<44} {statistics.median(values):>9.3f} "
            f"{min(values):>7.3f} {max(values):>7.3f}"
        )
    ratio = statistics.median(times["analyze_audio"]) / statistics.median(
        times["librosa"]
    )
    print(f"{'ratio analyze_audio / librosa':<44} {ratio:>9.2f}")
    print(
        f"\n(found {result.bpm:.1f} BPM, {len(result.beats)} beats, "
        f"{len(result.sections)} sections, {result.loudness_lufs:.1f} LUFS; "
        f"per-run times {np.round(times['analyze_audio'], 3).tolist()})"
    )
    median = statistics.median(times["analyze_audio"])
    ok = median <= TARGET_SECONDS
    print(f"\n{'PASS' if ok else 'FAIL'}  whole analysis of a 3-minute MP3: "
          f"median {median:.3f} s <= {TARGET_SECONDS} s")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
