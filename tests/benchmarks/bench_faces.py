"""Speed of the face engine on one CPU core: a 1080p photo, a character
registered from five photos, and the consistency check of a 4-second clip.

    .venv/bin/python -m tests.benchmarks.bench_faces [--runs N]

The process pins itself to one core (and its math libraries to one thread)
before anything is loaded. The photos are the test portraits (the astronaut
and Grace Hopper) placed in 1920x1080 frames; the clip is 4 s of 1080p30
H.264 made from the astronaut's photo under a slow zoom, and a second clip
switches to Grace Hopper at 2.03 s (the check must find the switch, so it
looks at more frames). Each measure is the median of ``--runs`` runs after a
warm-up, with the face provider already loaded (a worker keeps it loaded;
its load time is printed on its own).

Beside each figure, in the same run, the same work with dlib's own ResNet
code instead of the onnxruntime graph (``DlibProvider(fast=False)``: what
the dlib wheel gives by itself, and how face_recognition runs it). Exit
status 0 when every target is met.
"""

from __future__ import annotations

import os

# One core, one thread: set before numpy, OpenBLAS or onnxruntime load.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

from tests.unit.workers.faces_material import (  # noqa: E402
    astronaut,
    hopper,
    variant,
    write_clip,
)
from workers.faces.base import FaceProvider, align  # noqa: E402
from workers.faces.dlib_provider import DlibProvider  # noqa: E402
from workers.faces.frames import StillFrames, VideoFrames  # noqa: E402
from workers.faces.gate import GateSettings, check_frames  # noqa: E402
from workers.faces.identity import build_identity, group_people  # noqa: E402
from workers.faces.images import save_rgb  # noqa: E402
from workers.faces.references import check_reference  # noqa: E402

cv2.setNumThreads(1)

TARGETS = {"photo": 0.3, "register": 2.0, "clip": 1.0}
FULL_HD = (1920, 1080)


def framed(face_picture: np.ndarray, height: int) -> np.ndarray:
    """A 1920x1080 photo: the portrait at ``height`` px on a busy background."""
    background = cv2.resize(
        np.ascontiguousarray(skimage.data.coffee()),
        FULL_HD,
        interpolation=cv2.INTER_AREA,
    )
    scale = height / face_picture.shape[0]
    portrait = cv2.resize(
        face_picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC
    )
    h, w = portrait.shape[:2]
    x = (FULL_HD[0] - w) // 3
    background[FULL_HD[1] - h :, x : x + w] = portrait[: FULL_HD[1]]
    return np.ascontiguousarray(background)


def median_seconds(work: Callable[[], object], runs: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def detect_and_embed(provider: FaceProvider, photo: np.ndarray) -> None:
    faces = provider.detect(photo)
    assert faces, "no face in the benchmark photo"
    provider.embed(photo, faces[:1])


def register(provider: FaceProvider, photos: list[np.ndarray], folder: Path) -> None:
    """What the registration task does with five photos, storage aside:
    check each, cut its 224 px crop, and make the identity."""
    rows = []
    for n, photo in enumerate(photos):
        check = check_reference(provider, photo)
        assert check.accepted and check.face is not None and check.embedding is not None
        save_rgb(align(photo, check.face, 224), folder / f"crop-{n}.jpg")
        rows.append(check.embedding)
    vectors = np.stack(rows)
    group_people(vectors, provider.threshold)
    build_identity(vectors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_faces")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each")
    args = parser.parse_args(argv)
    runs = max(args.runs, 3)

    started = time.perf_counter()
    fast = DlibProvider()
    load_fast = time.perf_counter() - started
    started = time.perf_counter()
    plain = DlibProvider(fast=False)
    load_plain = time.perf_counter() - started

    photo = framed(hopper(), 1080)  # a face about 390 px tall
    small = framed(astronaut(), 1080)  # a face about 185 px tall
    five = [
        framed(variant(hopper(), change), 1000)
        for change in ("flipped", "brighter", "darker", "rotated 8", "jpeg quality 15")
    ]
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        portrait = folder / "astronaut.png"
        other = folder / "hopper.png"
        Image.fromarray(astronaut()).save(portrait)
        Image.fromarray(hopper()).save(other)
        her = StillFrames(portrait, FULL_HD, 120, 30, "zoom_in", (0.45, 0.25))
        him = StillFrames(other, FULL_HD, 120, 30, "zoom_in", (0.5, 0.4))
        same = write_clip(folder / "same.mp4", her.frame, 120)
        switch = write_clip(
            folder / "switch.mp4",
            lambda i: her.frame(i) if i < 61 else him.frame(i),
            120,
        )
        identity = build_identity(
            fast.embed(astronaut(), fast.detect(astronaut())[:1])
        ).vector

        def check(provider: FaceProvider, clip: Path) -> Callable[[], object]:
            settings = GateSettings(threshold=provider.threshold)

            def run() -> None:
                result = check_frames(VideoFrames(clip), provider, identity, settings)
                assert result.passed == (clip == same), result.reason

            return run

        for label, target, work in (
            ("1080p photo: detect + embed (face 390 px)", "photo",
             lambda p: lambda: detect_and_embed(p, photo)),
            ("1080p photo: detect + embed (face 185 px)", "photo",
             lambda p: lambda: detect_and_embed(p, small)),
            ("register a character from 5 photos", "register",
             lambda p: lambda: register(p, five, folder)),
            ("check a 4 s 1080p30 clip (passes)", "clip",
             lambda p: check(p, same)),
            ("check a 4 s 1080p30 clip (switch found)", "clip",
             lambda p: check(p, switch)),
        ):  # fmt: skip
            ours = median_seconds(work(fast), runs)
            theirs = median_seconds(work(plain), runs)
            rows.append((label, ours, theirs, TARGETS[target]))

    print(f"one core (cpu {sorted(os.sched_getaffinity(0))}), median of {runs} runs")
    print(f"provider load: {load_fast:.2f} s (with dlib's ResNet {load_plain:.2f} s)\n")
    print(f"| {'work':44} | ours (s) | dlib's ResNet (s) | speed-up | target | |")
    print(f"| {'-' * 44} | ---: | ---: | ---: | ---: | --- |")
    ok = True
    for label, ours, theirs, target in rows:
        passed = ours <= target
        ok &= passed
        print(
            f"| {label:44} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f}x"
            f" | ≤ {target:g} | {'PASS' if passed else 'FAIL'} |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
