"""A deterministic song synthesizer: the demo's music and the tests' ground truth.

The beat grid is exact: beat ``i`` starts at ``i * 60 / bpm`` seconds, so beat 0
is the first sample of the file and the song opens on the downbeat of bar 1.
The seed changes key, chord progression, bass rhythm and timbres, never the grid.

    python -m workers.audio.synth OUT.wav [--seed N] [--bpm X] [--truth OUT.json]
"""

from __future__ import annotations

import argparse
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PEAK_DBFS = -1.0

# Chord progressions as (semitones above the key, minor?) per bar.
_PROGRESSIONS: tuple[tuple[tuple[int, bool], ...], ...] = (
    ((0, False), (7, False), (9, True), (5, False)),  # I-V-vi-IV
    ((9, True), (5, False), (0, False), (7, False)),  # vi-IV-I-V
    ((0, False), (9, True), (5, False), (7, False)),  # I-vi-IV-V
    ((0, False), (5, False), (9, True), (7, False)),  # I-IV-vi-V
)

# Per-section mix: master gain at the start and end of the section, then the
# level of each part. Unknown labels are mixed like a verse.
_MIX: dict[str, dict[str, float]] = {
    "intro": {"g0": 0.55, "g1": 0.6, "kick": 0, "snare": 0, "hat": 0.8, "bass": 0,
              "pad": 0.8},
    "verse": {"g0": 0.7, "g1": 0.7, "kick": 0.9, "snare": 0.7, "hat": 0.6,
              "bass": 0.8, "pad": 0.5},
    "chorus": {"g0": 1.0, "g1": 1.0, "kick": 1.0, "snare": 1.0, "hat": 1.0,
               "bass": 1.0, "pad": 0.9},
    "outro": {"g0": 0.6, "g1": 0.3, "kick": 0.8, "snare": 0, "hat": 0.6,
              "bass": 0.5, "pad": 0.8},
}  # fmt: skip


@dataclass
class SongSpec:
    bpm: float = 120.0
    seed: int = 0
    sections: tuple[tuple[str, int], ...] = (
        ("intro", 4),
        ("verse", 8),
        ("chorus", 8),
        ("verse", 8),
        ("chorus", 8),
        ("outro", 4),
    )  # (label, bars)
    beats_per_bar: int = 4
    sample_rate: int = 44100


@dataclass
class SynthesizedSong:
    samples: np.ndarray  # (n, 2) float32
    sample_rate: int
    bpm: float
    beats: list[float]
    downbeats: list[float]
    sections: list[dict[str, object]] = field(default_factory=list)
    duration: float = 0.0

    def truth(self) -> dict[str, object]:
        """What an analyzer should find, JSON-able."""
        return {
            "bpm": self.bpm,
            "beats": list(self.beats),
            "downbeats": list(self.downbeats),
            "sections": [dict(s) for s in self.sections],
            "duration": self.duration,
        }


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def _wavetable(harmonics: int, rolloff: float, size: int = 4096) -> np.ndarray:
    # Band-limited saw-like cycle, looked up by phase rather than summing sines.
    k = np.arange(1, harmonics + 1)[:, None]
    x = 2 * np.pi * np.arange(size)[None, :] / size
    table = (np.sin(k * x) / k**rolloff).sum(axis=0)
    return (table / np.abs(table).max()).astype(np.float32)


def _tone(hz: float, table: np.ndarray, length: int, sr: int, phase0: float = 0.0):
    phase = (phase0 + hz * np.arange(length) / sr) % 1.0
    return table[(phase * len(table)).astype(np.int64)]


def _place(
    out: np.ndarray, times: np.ndarray, gains: np.ndarray, shot: np.ndarray, sr: int
) -> None:
    """Add one-shot ``shot`` into ``out`` at each time (s), scaled by its gain.

    A slice add per event: a few hundred events of a few thousand samples is far
    cheaper than touching every sample of the song once per part.
    """
    n = len(out)
    for start, gain in zip(np.round(times * sr).astype(np.int64), gains, strict=True):
        if gain <= 0 or start >= n:
            continue
        end = min(n, start + len(shot))
        out[start:end] += gain * shot[: end - start]


def _decay(sr: int, seconds: float, tau: float, attack: float = 0.002):
    t = np.arange(int(seconds * sr)) / sr
    return np.minimum(t / attack, 1.0) * np.exp(-t / tau), t


def _highpass(x: np.ndarray) -> np.ndarray:
    # A first difference is crude but enough to turn white noise into "hiss".
    return np.diff(x, prepend=0.0)


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Mono to (n, 2); ``pan`` from -1 (left) to 1 (right), constant power."""
    angle = (pan + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1)


@dataclass
class _Voice:
    kick: np.ndarray
    snare: np.ndarray
    hat: np.ndarray
    bass_table: np.ndarray
    pad_table: np.ndarray
    detune: float
    progression: tuple[tuple[int, bool], ...]
    key: int
    bass_eighths: bool
    offbeat_hat: float


def _voice(rng: np.random.Generator, sr: int) -> _Voice:
    env, t = _decay(sr, 0.4, rng.uniform(0.10, 0.18))
    f_hi, f_lo = rng.uniform(110, 170), rng.uniform(42, 55)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / rng.uniform(0.03, 0.05))
    kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * env
    click = int(0.003 * sr)
    kick[:click] += rng.uniform(-0.3, 0.3, click)  # the beater

    noise_env, t = _decay(sr, 0.25, rng.uniform(0.06, 0.11), attack=0.001)
    noise = _highpass(rng.standard_normal(len(t))) * 0.5
    tone = np.sin(2 * np.pi * rng.uniform(170, 220) * t) * np.exp(-t / 0.04)
    snare = noise * noise_env + 0.6 * tone

    hat_env, t = _decay(sr, 0.12, rng.uniform(0.015, 0.035), attack=0.0005)
    hat = _highpass(_highpass(rng.standard_normal(len(t)))) * hat_env * 0.25

    return _Voice(
        kick=_pan(kick, 0.0).astype(np.float32),
        snare=_pan(snare, -0.15).astype(np.float32),
        hat=_pan(hat, 0.3).astype(np.float32),
        bass_table=_wavetable(int(rng.integers(3, 7)), rolloff=1.5),
        pad_table=_wavetable(int(rng.integers(5, 10)), rolloff=rng.uniform(1.2, 2.0)),
        detune=rng.uniform(0.002, 0.006),
        progression=_PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))],
        key=int(rng.integers(12)),
        bass_eighths=bool(rng.integers(2)),
        offbeat_hat=rng.uniform(0.35, 0.6),
    )


def _bass_note(v: _Voice, root: int, length: int, sr: int) -> np.ndarray:
    t = np.arange(length) / sr
    env = np.exp(-t / 0.18) * np.minimum(t / 0.004, 1.0)
    env *= np.minimum((length - 1 - np.arange(length)) / (0.01 * sr), 1.0)
    wave_ = _tone(_midi_hz(33 + root), v.bass_table, length, sr) * env
    return _pan(wave_, 0.0).astype(np.float32)


def _pad_chord(v: _Voice, root: int, minor: bool, length: int, sr: int):
    t = np.arange(length) / sr
    env = np.minimum(t / 0.03, 1.0) * (0.7 + 0.3 * np.exp(-t / 0.4))
    env *= np.minimum((length - 1 - np.arange(length)) / (0.03 * sr), 1.0)
    out = np.zeros((length, 2), dtype=np.float32)
    for k, interval in enumerate((0, 3 if minor else 4, 7)):
        hz = _midi_hz(57 + root + interval)
        # Two detuned copies panned apart make it wide and slowly beating.
        a = _tone(hz * (1 + v.detune), v.pad_table, length, sr, phase0=0.1 * k)
        b = _tone(hz * (1 - v.detune), v.pad_table, length, sr, phase0=0.37 * k)
        out += _pan(a * env, -0.5 + 0.2 * k) + _pan(b * env, 0.5 - 0.2 * k)
    return out * 0.1


def synthesize_song(spec: SongSpec | None = None) -> SynthesizedSong:
    """Render ``spec`` to stereo float32, peak-normalized to -1 dBFS."""
    spec = spec or SongSpec()
    if not 30 <= spec.bpm <= 300:
        raise ValueError("bpm must be between 30 and 300")
    if spec.beats_per_bar < 2 or not spec.sections:
        raise ValueError("a song needs sections and at least 2 beats per bar")
    if any(bars < 1 for _, bars in spec.sections):
        raise ValueError("every section needs at least one bar")
    sr, bpb = spec.sample_rate, spec.beats_per_bar
    rng = np.random.default_rng(spec.seed)
    v = _voice(rng, sr)
    spb = 60.0 / spec.bpm
    n_bars = sum(bars for _, bars in spec.sections)
    n_beats = n_bars * bpb
    n = round(n_beats * spb * sr)
    beat_t = np.arange(n_beats) * 60.0 / spec.bpm  # exactly i * 60 / bpm
    out = np.zeros((n, 2), dtype=np.float32)

    # Which section each beat is in, and the part levels there.
    labels = [label for label, bars in spec.sections for _ in range(bars * bpb)]
    mix = [_MIX.get(label, _MIX["verse"]) for label in labels]
    level = {
        part: np.array([m[part] for m in mix])
        for part in ("kick", "snare", "hat", "bass", "pad")
    }
    pos = np.arange(n_beats) % bpb
    is_outro = np.array([label == "outro" for label in labels])

    # Kick on beats 1 and 3 (1 only in short bars, and in the thinning outro),
    # with beat 1 accented: that accent is what marks the downbeat.
    third = pos == bpb // 2 if bpb >= 4 else np.zeros(n_beats, dtype=bool)
    kick_gain = np.where(pos == 0, 1.0, np.where(third & ~is_outro, 0.75, 0.0))
    _place(out, beat_t, 0.9 * kick_gain * level["kick"], v.kick, sr)
    snare_gain = np.where(pos % 2 == 1, 0.4, 0.0) * level["snare"]
    _place(out, beat_t, snare_gain, v.snare, sr)
    # Closed hats on eighths, accented on the beat so the pulse is audible
    # even in the drumless intro.
    eighth_t = np.arange(2 * n_beats) * spb / 2
    hat_gain = np.where(np.arange(2 * n_beats) % 2 == 0, 0.3, 0.3 * v.offbeat_hat)
    _place(out, eighth_t, hat_gain * np.repeat(level["hat"], 2), v.hat, sr)

    # Chords change on downbeats: the bass plays the root, the pad a triad.
    roots = [(r + v.key) % 12 for r, _ in v.progression]
    chord_of_beat = (np.arange(n_beats) // bpb) % len(v.progression)
    step = 0.5 if v.bass_eighths else 1.0  # in beats
    note_beats = np.arange(0, n_beats, step)
    beat_idx = note_beats.astype(np.int64)
    bass_gain = level["bass"][beat_idx] * np.where(pos[beat_idx] == 0, 0.45, 0.36)
    bar_t = np.arange(n_bars) * spb * bpb
    bar_len = int(np.ceil(spb * bpb * sr))
    for c, (_, minor) in enumerate(v.progression):
        on_c = chord_of_beat[beat_idx] == c
        note = _bass_note(v, roots[c], int(np.ceil(step * spb * sr)), sr)
        _place(out, note_beats[on_c] * spb, bass_gain[on_c], note, sr)
        bars_c = np.flatnonzero(chord_of_beat[::bpb] == c)
        pad_gain = level["pad"][bars_c * bpb]
        chord = _pad_chord(v, roots[c], minor, bar_len, sr)
        _place(out, bar_t[bars_c], pad_gain, chord, sr)

    # Master gain per section: chorus loudest, the outro fades towards the end.
    starts, gains, sections = [], [], []
    beat0 = 0
    for label, bars in spec.sections:
        m = _MIX.get(label, _MIX["verse"])
        s0, s1 = beat0 * spb, (beat0 + bars * bpb) * spb
        starts += [s0, s1 - 1e-3]
        gains += [m["g0"], m["g1"]]
        sections.append({"start": s0, "end": s1, "label": label})
        beat0 += bars * bpb
    out *= np.interp(np.arange(n) / sr, starts, gains).astype(np.float32)[:, None]
    tail = min(n, int(0.02 * sr))  # no click at the cut
    out[n - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)[:, None]
    peak = float(np.abs(out).max()) or 1.0
    out *= np.float32(10 ** (PEAK_DBFS / 20) / peak)

    beats = [float(b) for b in beat_t]
    return SynthesizedSong(
        samples=out,
        sample_rate=sr,
        bpm=float(spec.bpm),
        beats=beats,
        downbeats=beats[::bpb],
        sections=sections,
        duration=n / sr,
    )


def write_wav(path: str | Path, song: SynthesizedSong) -> Path:
    """Write ``song`` as 16-bit PCM WAV (stereo) and return the path."""
    path = Path(path)
    pcm = np.clip(np.round(song.samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1] if pcm.ndim == 2 else 1)
        w.setsampwidth(2)
        w.setframerate(song.sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.audio.synth",
        description="Synthesize a test song with an exactly known beat grid.",
    )
    parser.add_argument("out", type=Path, help="WAV file to write")
    parser.add_argument("--seed", type=int, default=0, help="varies key, chords, sound")
    parser.add_argument("--bpm", type=float, default=120.0, help="tempo (30-300)")
    parser.add_argument("--truth", type=Path, help="also write beats etc. as JSON")
    args = parser.parse_args(argv)
    try:
        song = synthesize_song(SongSpec(bpm=args.bpm, seed=args.seed))
    except ValueError as exc:
        parser.error(str(exc))
    write_wav(args.out, song)
    if args.truth:
        args.truth.write_text(json.dumps(song.truth(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
