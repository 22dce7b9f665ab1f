"""Peak memory of a 3-minute 1080p render: frames must stream, never pile up.

    .venv/bin/python -m tests.benchmarks.bench_assembly_memory [--minutes 3]

Renders a 1080p30 timeline of 36 photos (5 s each, with moves, a transition
of each kind in turn, a grade, subtitles and music) and samples, every 50 ms,
the resident memory of this process plus every ffmpeg it starts (the
encoder, decoders, transition windows). The table shows the peak of that sum
against the 1 GB target, with the frame rate for reference. Exit status 0
when the peak is under the target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from workers.assembly.render import render_timeline
from workers.assembly.timeline import load_timeline
from workers.assembly.transitions import TRANSITIONS
from workers.audio.synth import SongSpec, synthesize_song, write_wav

TARGET_BYTES = 1024**3
CLIP_S = 5.0
OVERLAP_S = 0.5
MOVES = ("zoom_in", "pan_right", "zoom_out", "pan_left", "push_in", "pan_up")
PICTURES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            pid, ppid = int(entry.name), int(fields[1])
            with open(f"/proc/{entry.name}/statm", "rb") as f:
                rss[pid] = int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _material(folder: Path, clips: int, seconds: float) -> dict:
    names = []
    for i in range(clips):
        picture = getattr(skimage.data, PICTURES[i % len(PICTURES)])()
        image = Image.fromarray(np.asarray(picture)).convert("RGB")
        image = image.resize((2400, 1600), Image.Resampling.LANCZOS)
        if (i // len(PICTURES)) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        name = f"photo-{i:02d}.jpg"
        image.save(folder / name, quality=90)
        names.append(name)
    bars = int(seconds / 2) + 1  # 120 BPM 4/4: 2 s a bar
    song = synthesize_song(SongSpec(bpm=120.0, seed=7, sections=(("verse", bars),)))
    write_wav(folder / "song.wav", song)
    cues = "".join(
        f"{n + 1}\n00:{(n * 5) // 60:02d}:{(n * 5) % 60:02d},000 --> "
        f"00:{(n * 5 + 4) // 60:02d}:{(n * 5 + 4) % 60:02d},000\nLine {n + 1}\n\n"
        for n in range(int(seconds // 5))
    )
    (folder / "lyrics.srt").write_text(cues, encoding="utf-8")
    kinds = [k for k in TRANSITIONS if k != "cut"]
    doc_clips = []
    start = 0.0
    for i, name in enumerate(names):
        last = i == len(names) - 1
        clip: dict = {
            "source": {"kind": "still", "file": name},
            "start": round(start, 6),
            "duration": CLIP_S + (0 if last else OVERLAP_S),
            "move": MOVES[i % len(MOVES)],
        }
        if not last:
            clip["transition"] = {"type": kinds[i % len(kinds)], "duration": OVERLAP_S}
        doc_clips.append(clip)
        start += CLIP_S
    return {
        "version": 1,
        "output": {"preset": "youtube"},
        "clips": doc_clips,
        "audio": [{"file": "song.wav", "role": "music", "fade_out": 1.0}],
        "grade": {"preset": "cinematic_teal_orange", "intensity": 0.8},
        "text": [{"kind": "subtitles", "file": "lyrics.srt"}],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    clips = max(2, int(round(args.minutes * 60 / CLIP_S)))
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        folder = Path(tmp)
        print(f"Making {clips} photos and a {clips * CLIP_S:.0f} s song...", flush=True)
        timeline = load_timeline(_material(folder, clips, clips * CLIP_S))
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(os.getpid()))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        before = _tree_rss(os.getpid())
        sampler.start()
        try:
            report = render_timeline(timeline, folder / "out.mp4", base_dir=folder)
        finally:
            done.set()
            sampler.join()
    ok = peak < TARGET_BYTES
    mib = 1024**2
    print()
    print("| measure | value | target | result |")
    print("| --- | --- | --- | --- |")
    print(f"| video | {report.duration:.1f} s, {report.frames} frames 1080p30 | | |")
    fps = report.frames / report.seconds
    print(f"| render time | {report.seconds:.1f} s ({fps:.1f} fps) | | |")
    print(f"| memory before render | {before / mib:.0f} MiB | | |")
    print(
        f"| peak memory (process + ffmpeg children) | {peak / mib:.0f} MiB "
        f"| < {TARGET_BYTES / mib:.0f} MiB | {'PASS' if ok else 'FAIL'} |"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
