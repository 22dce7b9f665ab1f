"""A deterministic song synthesizer: the demo's music and the tests' ground truth.

At a constant tempo the beat grid is exact: beat ``i`` starts at ``i * 60 / bpm``
seconds, so beat 0 is the first sample of the file and the song opens on the
downbeat of bar 1. The seed changes key, chord progression, bass rhythm and
timbres, never the grid.

The benchmark's harder songs come from the optional parts of ``SongSpec``, each
off by default (so the default songs are sample-for-sample what they were):
a tempo ramp (``bpm_end``; beats integrated from a tempo that moves linearly in
time), 3/4 (``beats_per_bar=3``), swung eighths (``swing``), a sparse intro,
syncopated kick and bass, added noise at a given SNR, and distinct material per
section label (``distinct_sections``: verse, chorus and bridge each get their
own chords and pad sound, repeated labels repeat the same material).

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
# With distinct sections the chorus lifts to the subdominant's key area and the
# bridge leans on the minor chords the verse never plays.
_CHORUS_SHIFT = 5
_BRIDGE: tuple[tuple[int, bool], ...] = ((2, True), (4, True), (5, False), (7, False))

# Per-section mix: master gain at the start and end of the section, then the
# level of each part. Unknown labels are mixed like a verse.
_MIX: dict[str, dict[str, float]] = {
    "intro": {"g0": 0.55, "g1": 0.6, "kick": 0, "snare": 0, "hat": 0.8, "bass": 0,
              "pad": 0.8},
    "verse": {"g0": 0.7, "g1": 0.7, "kick": 0.9, "snare": 0.7, "hat": 0.6,
              "bass": 0.8, "pad": 0.5},
    "chorus": {"g0": 1.0, "g1": 1.0, "kick": 1.0, "snare": 1.0, "hat": 1.0,
               "bass": 1.0, "pad": 0.9},
    "bridge": {"g0": 0.75, "g1": 0.8, "kick": 0.7, "snare": 0.5, "hat": 0.35,
               "bass": 0.9, "pad": 1.0},
    "outro": {"g0": 0.6, "g1": 0.3, "kick": 0.8, "snare": 0, "hat": 0.6,
              "bass": 0.5, "pad": 0.8},
}  # fmt: skip
_PARTS = ("kick", "snare", "hat", "bass", "pad")


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
    # Tempo at the end of the song; the tempo moves linearly in time from
    # ``bpm`` to it. None keeps a constant tempo.
    bpm_end: float | None = None
    # Long-to-short ratio of each pair of eighths: 1 straight, 2 triplet swing.
    swing: float = 1.0
    # The intro plays only its pad and a hi-hat on each downbeat.
    sparse_intro: bool = False
    # Kick on 1, the "and" of 2 and (softer) 3, bass on the off-beats, off-beat
    # hats as loud as those on the beat.
    syncopation: bool = False
    # White noise added at this signal-to-noise ratio (dB); None adds none.
    noise_snr_db: float | None = None
    # Verse, chorus and bridge get their own chords and pad sound; intro
    # borrows the verse's material and outro the chorus's.
    distinct_sections: bool = False


@dataclass
class SynthesizedSong:
    samples: np.ndarray  # (n, 2) float32
    sample_rate: int
    bpm: float  # the mean tempo (beats per minute over the whole song)
    beats: list[float]
    downbeats: list[float]
    sections: list[dict[str, object]] = field(default_factory=list)
    duration: float = 0.0
    beats_per_bar: int = 4
    # Tempo through the song: one point when constant, the ramp's two ends
    # (linear in time between them) otherwise.
    tempo_curve: list[dict[str, float]] = field(default_factory=list)

    def truth(self) -> dict[str, object]:
        """What an analyzer should find, JSON-able."""
        return {
            "bpm": self.bpm,
            "beats": list(self.beats),
            "downbeats": list(self.downbeats),
            "sections": [dict(s) for s in self.sections],
            "duration": self.duration,
            "beats_per_bar": self.beats_per_bar,
            "tempo_curve": [dict(p) for p in self.tempo_curve],
        }


@dataclass(frozen=True)
class _Grid:
    """Time of any (fractional) beat position, the tempo integrated over time."""

    bpm0: float
    bpm1: float
    n_beats: int

    @property
    def constant(self) -> bool:
        return self.bpm0 == self.bpm1

    @property
    def duration(self) -> float:
        # The mean tempo of a linear ramp is the mean of its ends.
        return 120.0 * self.n_beats / (self.bpm0 + self.bpm1)

    def time(self, positions: np.ndarray) -> np.ndarray:
        p = np.asarray(positions, dtype=np.float64)
        if self.constant:
            return p * (60.0 / self.bpm0)
        # 60 * beats(t) = bpm0 * t + a * t**2; solved for t in the form that
        # stays accurate when a is small.
        a = (self.bpm1 - self.bpm0) / (2.0 * self.duration)
        return 120.0 * p / (self.bpm0 + np.sqrt(self.bpm0**2 + 240.0 * a * p))

    def shortest_beat(self) -> float:
        return 60.0 / max(self.bpm0, self.bpm1)


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


def _pad_chord(
    v: _Voice,
    root: int,
    minor: bool,
    length: int,
    sr: int,
    table: np.ndarray | None = None,
):
    table = v.pad_table if table is None else table
    t = np.arange(length) / sr
    env = np.minimum(t / 0.03, 1.0) * (0.7 + 0.3 * np.exp(-t / 0.4))
    env *= np.minimum((length - 1 - np.arange(length)) / (0.03 * sr), 1.0)
    out = np.zeros((length, 2), dtype=np.float32)
    for k, interval in enumerate((0, 3 if minor else 4, 7)):
        hz = _midi_hz(57 + root + interval)
        # Two detuned copies panned apart make it wide and slowly beating.
        a = _tone(hz * (1 + v.detune), table, length, sr, phase0=0.1 * k)
        b = _tone(hz * (1 - v.detune), table, length, sr, phase0=0.37 * k)
        out += _pan(a * env, -0.5 + 0.2 * k) + _pan(b * env, 0.5 - 0.2 * k)
    return out * 0.1


def _check(spec: SongSpec) -> None:
    if not 30 <= spec.bpm <= 300:
        raise ValueError("bpm must be between 30 and 300")
    if spec.bpm_end is not None and not 30 <= spec.bpm_end <= 300:
        raise ValueError("bpm_end must be between 30 and 300")
    if spec.beats_per_bar < 2 or not spec.sections:
        raise ValueError("a song needs sections and at least 2 beats per bar")
    if any(bars < 1 for _, bars in spec.sections):
        raise ValueError("every section needs at least one bar")
    if not 1.0 <= spec.swing <= 4.0:
        raise ValueError("swing is a long-to-short ratio between 1 and 4")


def _bar_chords(
    spec: SongSpec, v: _Voice, extra: np.random.Generator
) -> tuple[list[tuple[int, bool, str]], dict[str, np.ndarray]]:
    """(root, minor, pad sound) of every bar, and the pad sounds by name."""
    tables = {"main": v.pad_table}
    if not spec.distinct_sections:
        # Chords run on through the song regardless of sections.
        n_bars = sum(bars for _, bars in spec.sections)
        prog = v.progression
        return [
            ((prog[b % len(prog)][0] + v.key) % 12, prog[b % len(prog)][1], "main")
            for b in range(n_bars)
        ], tables
    others = [p for p in _PROGRESSIONS if p != v.progression]
    chorus = others[int(extra.integers(len(others)))]
    material = {
        "verse": (v.progression, 0, "main"),
        "chorus": (chorus, _CHORUS_SHIFT, "bright"),
        "bridge": (_BRIDGE, 0, "dark"),
    }
    material["intro"] = material["verse"]
    material["outro"] = material["chorus"]
    tables["bright"] = _wavetable(int(extra.integers(12, 16)), rolloff=1.0)
    tables["dark"] = _wavetable(2, rolloff=2.5)
    chords: list[tuple[int, bool, str]] = []
    for label, bars in spec.sections:
        prog, shift, sound = material.get(label, material["verse"])
        # Each section starts its progression afresh, so a repeated label
        # repeats the same bars.
        for b in range(bars):
            step, minor = prog[b % len(prog)]
            chords.append(((step + shift + v.key) % 12, minor, sound))
    return chords, tables


def synthesize_song(spec: SongSpec | None = None) -> SynthesizedSong:
    """Render ``spec`` to stereo float32, peak-normalized to -1 dBFS."""
    spec = spec or SongSpec()
    _check(spec)
    sr, bpb = spec.sample_rate, spec.beats_per_bar
    rng = np.random.default_rng(spec.seed)
    v = _voice(rng, sr)
    # The optional features draw from their own stream, so that turning them
    # on never changes what the seed picks for the default song.
    extra = np.random.default_rng([spec.seed, 1])
    n_bars = sum(bars for _, bars in spec.sections)
    n_beats = n_bars * bpb
    bpm_end = spec.bpm if spec.bpm_end is None else spec.bpm_end
    grid = _Grid(spec.bpm, bpm_end, n_beats)
    spb = 60.0 / spec.bpm
    if grid.constant:
        n = round(n_beats * spb * sr)
        beat_t = np.arange(n_beats) * 60.0 / spec.bpm  # exactly i * 60 / bpm
    else:
        n = round(grid.duration * sr)
        beat_t = grid.time(np.arange(n_beats))
    out = np.zeros((n, 2), dtype=np.float32)

    # Which section each beat is in, and the part levels there.
    labels = [label for label, bars in spec.sections for _ in range(bars * bpb)]
    mix = [_MIX.get(label, _MIX["verse"]) for label in labels]
    level = {part: np.array([m[part] for m in mix]) for part in _PARTS}
    pos = np.arange(n_beats) % bpb
    is_outro = np.array([label == "outro" for label in labels])
    sparse = np.array([spec.sparse_intro and label == "intro" for label in labels])
    # Where the second eighth of each beat falls, as a fraction of the beat.
    off = spec.swing / (1.0 + spec.swing)

    # Kick on beats 1 and 3 (1 only in short bars, and in the thinning outro),
    # with beat 1 accented: that accent is what marks the downbeat.
    third = pos == bpb // 2 if bpb >= 4 else np.zeros(n_beats, dtype=bool)
    third_gain = 0.75
    if spec.syncopation:
        # The kick pushes ahead of beat 3, which it then only touches.
        third_gain = 0.5
        pushed = (pos == 1) & ~is_outro  # the "and" of 2
        _place(out, grid.time(np.flatnonzero(pushed) + off),
               0.9 * 0.7 * level["kick"][pushed], v.kick, sr)  # fmt: skip
    kick_gain = np.where(pos == 0, 1.0, np.where(third & ~is_outro, third_gain, 0.0))
    _place(out, beat_t, 0.9 * kick_gain * level["kick"], v.kick, sr)
    snare_gain = np.where(pos % 2 == 1, 0.4, 0.0) * level["snare"]
    _place(out, beat_t, snare_gain, v.snare, sr)
    # Closed hats on eighths, accented on the beat so the pulse is audible
    # even in the drumless intro.
    eighths = np.arange(2 * n_beats)
    offbeat_hat = 1.0 if spec.syncopation else v.offbeat_hat
    hat_gain = np.where(eighths % 2 == 0, 0.3, 0.3 * offbeat_hat)
    hat_gain = hat_gain * np.repeat(level["hat"], 2)
    if spec.sparse_intro:
        on_downbeat = (eighths % 2 == 0) & (np.repeat(pos, 2) == 0)
        hat_gain = np.where(np.repeat(sparse, 2) & ~on_downbeat, 0.0, hat_gain)
    eighth_pos = eighths // 2 + np.where(eighths % 2 == 1, off, 0.0)
    if off == 0.5 and grid.constant:
        eighth_t = np.arange(2 * n_beats) * spb / 2
    else:
        eighth_t = grid.time(eighth_pos)
    _place(out, eighth_t, hat_gain, v.hat, sr)

    # Chords change on downbeats: the bass plays the root, the pad a triad.
    chords, tables = _bar_chords(spec, v, extra)
    step = 0.5 if v.bass_eighths or spec.syncopation else 1.0  # in beats
    note_beats = np.arange(0, n_beats, step)
    if spec.syncopation:
        # Root on the downbeat, then only off-beats: the bass pushes.
        keep = (note_beats % 1 != 0) | (note_beats % bpb == 0)
        note_beats = note_beats[keep]
    beat_idx = note_beats.astype(np.int64)
    note_pos = np.where(note_beats % 1 != 0, beat_idx + off, note_beats)
    bass_gain = level["bass"][beat_idx] * np.where(pos[beat_idx] == 0, 0.45, 0.36)
    bass_gain = np.where(sparse[beat_idx], 0.0, bass_gain)
    # Each bass note lasts until the next one at the fastest tempo, so that
    # swung or ramped notes never overlap.
    shortest = float(np.diff(np.r_[note_pos, n_beats]).min())
    beat_s = spb if grid.constant else grid.shortest_beat()
    note_len = int(np.ceil(shortest * beat_s * sr))
    note_t = note_pos * spb if grid.constant else grid.time(note_pos)
    bar_starts = np.arange(n_bars) * bpb
    bar_t = np.arange(n_bars) * spb * bpb if grid.constant else grid.time(bar_starts)
    bar_len = int(np.ceil(spb * bpb * sr))
    note_bar = beat_idx // bpb
    # Grouped by chord, in order of first appearance, so the default song adds
    # its parts in the same order as ever.
    for key in dict.fromkeys(chords):
        root, minor, sound = key
        bars_c = np.array([b for b, c in enumerate(chords) if c == key])
        on_c = np.isin(note_bar, bars_c)
        note = _bass_note(v, root, note_len, sr)
        _place(out, note_t[on_c], bass_gain[on_c], note, sr)
        pad_gain = level["pad"][bars_c * bpb]
        if grid.constant:
            chord = _pad_chord(v, root, minor, bar_len, sr, tables[sound])
            _place(out, bar_t[bars_c], pad_gain, chord, sr)
            continue
        # Under a ramp every bar has its own length.
        ends = grid.time(bar_starts + bpb)
        for b, gain in zip(bars_c, pad_gain, strict=True):
            length = int(np.ceil((ends[b] - bar_t[b]) * sr))
            chord = _pad_chord(v, root, minor, length, sr, tables[sound])
            _place(out, bar_t[b : b + 1], np.array([gain]), chord, sr)

    # Master gain per section: chorus loudest, the outro fades towards the end.
    starts: list[float] = []
    gains: list[float] = []
    sections: list[dict[str, object]] = []
    beat0 = 0
    for label, bars in spec.sections:
        m = _MIX.get(label, _MIX["verse"])
        if grid.constant:
            s0, s1 = beat0 * spb, (beat0 + bars * bpb) * spb
        else:
            s0, s1 = (
                float(t) for t in grid.time(np.array([beat0, beat0 + bars * bpb]))
            )
        starts += [s0, s1 - 1e-3]
        gains += [m["g0"], m["g1"]]
        sections.append({"start": s0, "end": s1, "label": label})
        beat0 += bars * bpb
    out *= np.interp(np.arange(n) / sr, starts, gains).astype(np.float32)[:, None]
    if spec.noise_snr_db is not None:
        power = float(np.mean(np.square(out, dtype=np.float64)))
        scale = np.sqrt(power / 10 ** (spec.noise_snr_db / 10))
        out += (scale * extra.standard_normal(out.shape)).astype(np.float32)
    tail = min(n, int(0.02 * sr))  # no click at the cut
    out[n - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)[:, None]
    peak = float(np.abs(out).max()) or 1.0
    out *= np.float32(10 ** (PEAK_DBFS / 20) / peak)

    beats = [float(b) for b in beat_t]
    duration = n / sr
    if grid.constant:
        curve = [{"time": 0.0, "bpm": float(spec.bpm)}]
    else:
        curve = [{"time": 0.0, "bpm": float(spec.bpm)},
                 {"time": duration, "bpm": float(bpm_end)}]  # fmt: skip
    return SynthesizedSong(
        samples=out,
        sample_rate=sr,
        bpm=float(spec.bpm) if grid.constant else 60.0 * n_beats / grid.duration,
        beats=beats,
        downbeats=beats[::bpb],
        sections=sections,
        duration=duration,
        beats_per_bar=bpb,
        tempo_curve=curve,
    )


def write_wav(path: str | Path, song: SynthesizedSong) -> Path:
    """Write ``song`` as 16-bit PCM WAV (stereo) and return the path."""
    return write_pcm(path, song.samples, song.sample_rate)


def write_pcm(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write float ``samples`` in [-1, 1] (n, or n x channels) as 16-bit PCM
    WAV and return the path."""
    path = Path(path)
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1] if pcm.ndim == 2 else 1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
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
    parser.add_argument("--bpm-end", type=float, help="ramp the tempo to this")
    parser.add_argument("--meter", type=int, default=4, help="beats per bar")
    parser.add_argument("--swing", type=float, default=1.0, help="eighths ratio")
    parser.add_argument("--sparse-intro", action="store_true")
    parser.add_argument("--syncopation", action="store_true")
    parser.add_argument("--noise-snr", type=float, help="add noise at this SNR (dB)")
    parser.add_argument(
        "--distinct-sections", action="store_true", help="own chords per label"
    )
    parser.add_argument("--truth", type=Path, help="also write beats etc. as JSON")
    args = parser.parse_args(argv)
    try:
        song = synthesize_song(
            SongSpec(
                bpm=args.bpm,
                seed=args.seed,
                beats_per_bar=args.meter,
                bpm_end=args.bpm_end,
                swing=args.swing,
                sparse_intro=args.sparse_intro,
                syncopation=args.syncopation,
                noise_snr_db=args.noise_snr,
                distinct_sections=args.distinct_sections,
            )
        )
    except ValueError as exc:
        parser.error(str(exc))
    write_wav(args.out, song)
    if args.truth:
        args.truth.write_text(json.dumps(song.truth(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
