"""Accuracy of the music analysis on synthesized songs with a known answer.

    .venv/bin/python -m tests.benchmarks.bench_audio_accuracy [--only NAME] [--json OUT]

Every song of ``songs.CASES`` is written as a 44.1 kHz stereo WAV and analysed
by ``analyze_audio``; plain ``librosa.beat.beat_track`` on ``librosa.load``ed
audio is scored on the same files in the same run. Scores are mir_eval's:
beat and downbeat F-measure (70 ms window, beats in the first 5 s left out as
mir_eval's ``trim_beats`` does), tempo within 4% of the truth (the mean tempo
for the ramps), and section boundaries found within 3 s
(``mir_eval.segment.detection``, window 3, the song's start and end left out),
pooled over all songs. Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import mir_eval
import numpy as np

from tests.benchmarks.songs import CASES, render
from workers.audio.analysis import analyze_audio

BEAT_F_TARGET = 0.95
DOWNBEAT_F_TARGET = 0.85
TEMPO_TARGET = 0.95  # share of songs within TEMPO_TOLERANCE
TEMPO_TOLERANCE = 0.04
SECTION_TARGET = 0.80  # share of true boundaries found within 3 s


@dataclass
class Row:
    name: str
    true_bpm: float
    meter: int
    bpm: float
    beat_f: float
    downbeat_f: float
    tempo_ok: bool
    found_meter: int
    boundaries: int
    boundary_hits: float
    boundary_precision: float
    label_agreement: float
    seconds: float
    librosa_bpm: float
    librosa_beat_f: float
    librosa_tempo_ok: bool
    librosa_seconds: float


def _f(reference: list[float], estimated: list[float]) -> float:
    ref = mir_eval.beat.trim_beats(np.asarray(reference, dtype=float))
    est = mir_eval.beat.trim_beats(np.asarray(estimated, dtype=float))
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07))


def _intervals(sections: list[dict]) -> np.ndarray:
    return np.array([[float(s["start"]), float(s["end"])] for s in sections])


def _label_agreement(truth: list[dict], found: list[dict], duration: float) -> float:
    """Share of the song (sampled every 0.5 s) where the labels agree."""

    def label_at(sections: list[dict], t: float) -> str:
        for s in sections:
            if s["start"] <= t < s["end"]:
                return str(s["label"])
        return str(sections[-1]["label"])

    grid = np.arange(0.0, duration, 0.5)
    return float(np.mean([label_at(truth, t) == label_at(found, t) for t in grid]))


def score(case, folder: Path) -> Row:
    path, song = render(case, folder)
    truth = song.truth()
    start = time.perf_counter()
    result = analyze_audio(path)
    seconds = time.perf_counter() - start

    ref_sections = [dict(s) for s in song.sections]
    ref_sections[-1]["end"] = result.duration  # the same span for both
    precision, recall, _ = mir_eval.segment.detection(
        _intervals(ref_sections), _intervals(result.sections), window=3.0, trim=True
    )
    boundaries = len(ref_sections) - 1

    start = time.perf_counter()
    y, sr = librosa.load(path)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    librosa_seconds = time.perf_counter() - start
    librosa_bpm = float(np.atleast_1d(tempo)[0])

    def within(bpm: float) -> bool:
        return abs(bpm - song.bpm) <= TEMPO_TOLERANCE * song.bpm

    return Row(
        name=case.name,
        true_bpm=round(song.bpm, 2),
        meter=song.beats_per_bar,
        bpm=result.bpm,
        beat_f=_f(truth["beats"], result.beats),
        downbeat_f=_f(truth["downbeats"], result.downbeats),
        tempo_ok=within(result.bpm),
        found_meter=result.meter,
        boundaries=boundaries,
        boundary_hits=recall * boundaries,
        boundary_precision=float(precision),
        label_agreement=_label_agreement(
            ref_sections, result.sections, result.duration
        ),
        seconds=seconds,
        librosa_bpm=round(librosa_bpm, 2),
        librosa_beat_f=_f(truth["beats"], beats.tolist()),
        librosa_tempo_ok=within(librosa_bpm),
        librosa_seconds=librosa_seconds,
    )


def _table(rows: list[Row]) -> str:
    head = (
        f"{'song':<22} {'truth':>6} {'ours':>7} {'beatF':>6} {'downF':>6} "
        f"{'meter':>5} {'bounds':>7} {'labels':>6} {'secs':>5} | "
        f"{'librosa':>7} {'beatF':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        mark = "" if r.tempo_ok else "!"
        lmark = "" if r.librosa_tempo_ok else "!"
        meter = f"{r.found_meter}/{r.meter}"
        bounds = f"{r.boundary_hits:.0f}/{r.boundaries}"
        lines.append(
            f"{r.name:<22} {r.true_bpm:>6.1f} {r.bpm:>6.1f}{mark:1} {r.beat_f:>6.3f} "
            f"{r.downbeat_f:>6.3f} {meter:>5} {bounds:>7} {r.label_agreement:>6.2f} "
            f"{r.seconds:>5.2f} | {r.librosa_bpm:>6.1f}{lmark:1} "
            f"{r.librosa_beat_f:>6.3f}"
        )
    lines.append("(! = tempo more than 4% off; meter found/true; bounds hit/true)")
    return "\n".join(lines)


def summarize(rows: list[Row]) -> tuple[str, bool]:
    beat_f = float(np.mean([r.beat_f for r in rows]))
    librosa_f = float(np.mean([r.librosa_beat_f for r in rows]))
    downbeat_f = float(np.mean([r.downbeat_f for r in rows]))
    tempo = float(np.mean([r.tempo_ok for r in rows]))
    librosa_tempo = float(np.mean([r.librosa_tempo_ok for r in rows]))
    hits = sum(r.boundary_hits for r in rows)
    total = sum(r.boundaries for r in rows)
    sections = hits / total if total else 1.0
    precision = float(np.mean([r.boundary_precision for r in rows]))
    meters = float(np.mean([r.found_meter == r.meter for r in rows]))
    labels = float(np.mean([r.label_agreement for r in rows]))
    checks = [
        (f"mean beat F-measure {beat_f:.3f} >= {BEAT_F_TARGET} "
         f"and ahead of plain librosa's {librosa_f:.3f}",
         beat_f >= BEAT_F_TARGET and beat_f > librosa_f),
        (f"mean downbeat F-measure {downbeat_f:.3f} >= {DOWNBEAT_F_TARGET}",
         downbeat_f >= DOWNBEAT_F_TARGET),
        (f"tempo within 4% on {tempo:.1%} of songs >= {TEMPO_TARGET:.0%} "
         f"(plain librosa: {librosa_tempo:.1%})", tempo >= TEMPO_TARGET),
        (f"section boundaries within 3 s: {hits:.0f}/{total} = {sections:.1%} "
         f">= {SECTION_TARGET:.0%} (mean precision {precision:.1%})",
         sections >= SECTION_TARGET),
    ]  # fmt: skip
    lines = [f"{'PASS' if ok else 'FAIL'}  {text}" for text, ok in checks]
    lines.append(f"info  meter right on {meters:.1%} of songs; labels agree on "
                 f"{labels:.1%} of the time")  # fmt: skip
    return "\n".join(lines), all(ok for _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.bench_audio_accuracy"
    )
    parser.add_argument("--only", action="append", help="run songs whose name has this")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--keep", type=Path, help="write the songs here and keep them")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    cases = [c for c in CASES if not args.only or any(o in c.name for o in args.only)]
    print(f"{len(cases)} synthesized songs; analyze_audio vs plain librosa "
          f"{librosa.__version__} beat_track, scored with mir_eval "
          f"{mir_eval.__version__}\n", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        analyze_audio(render(cases[0], folder)[0])  # compile numba's kernels first
        rows = []
        for case in cases:
            rows.append(score(case, folder))
            print(f"  {case.name}: beat F {rows[-1].beat_f:.3f}", file=sys.stderr,
                  flush=True)  # fmt: skip
    print(_table(rows))
    summary, ok = summarize(rows)
    print()
    print(summary)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
