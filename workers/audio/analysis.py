"""The whole music analysis of one song, from one decode.

    analyze_audio(path) -> AudioAnalysisResult
    python -m workers.audio.analysis SONG [--json] [--svg OUT.svg]

The file is probed first (so a file over ``max_seconds`` is refused before it
is decoded), decoded once by ffmpeg to the analysis rate, and everything is
measured from that: tempo and beats (``tempo``), meter and downbeats
(``meter``), sections (``sections``), loudness (``loudness``). Times are
seconds from the start of the file as it plays: ffmpeg's MP3 decoder honours
the encoder's gapless header, so an MP3's beats match its WAV's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np

from workers.audio import loudness, meter, sections, tempo
from workers.audio.decode import AudioDecodeError, decode_audio_native
from workers.audio.errors import AudioAnalysisError
from workers.probe import ProbeError, probe_media

MIN_SECONDS = 3.0
SILENCE_DBFS = -60.0
ENERGY_HOP_SECONDS = 0.05
LENGTH_TOLERANCE = 0.5  # seconds a file may run over max_seconds (codec padding)
PEAK_COLUMNS = 2000  # resolution of the stored waveform envelope
CONTRACT_KEYS = (
    "duration", "bpm", "bpm_confidence", "beats", "downbeats", "onsets",
    "sections", "energy",
)  # fmt: skip

__all__ = [
    "AudioAnalysisError",
    "AudioAnalysisResult",
    "AudioDecodeError",
    "analyze_audio",
]


@dataclass
class AudioAnalysisResult:
    duration: float
    bpm: float  # mean tempo over the song
    bpm_confidence: float  # 0..1
    beats: list[float] = field(default_factory=list)
    downbeats: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)
    sections: list[dict[str, object]] = field(default_factory=list)
    energy: dict[str, object] = field(default_factory=dict)  # hop_s, values (LUFS)
    meter: int = 4  # beats per bar
    tempo_curve: list[dict[str, float]] = field(default_factory=list)
    loudness_lufs: float = loudness.ABSOLUTE_GATE
    # Min/max waveform envelope (2, PEAK_COLUMNS) for the picture; not part of
    # the JSON.
    peaks: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        """The ``analyze_audio --json`` contract's keys first, then the extras."""
        data: dict[str, object] = {key: getattr(self, key) for key in CONTRACT_KEYS}
        data.update(
            meter=self.meter,
            tempo_curve=self.tempo_curve,
            loudness_lufs=self.loudness_lufs,
        )
        return data

    def to_svg(self, width: int = 1200, height: int = 240) -> str:
        from workers.audio.picture import render_waveform_svg

        if self.peaks is None:
            raise ValueError("this analysis kept no waveform to draw")
        return render_waveform_svg(self.peaks, self, width=width, height=height)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _too_long(seconds: float, limit: float) -> AudioAnalysisError:
    return AudioAnalysisError(
        f"The audio is {_clock(seconds)} long, over the {_clock(limit)} limit "
        "for music analysis."
    )


def _check_length(path: Path, max_seconds: float | None) -> None:
    """Refuse a file longer than the limit from its header alone."""
    if max_seconds is None:
        return
    try:
        info = probe_media(path)
    except ProbeError:
        return  # decode_audio says what is wrong with it
    known = [s.duration for s in info.of_kind("audio") if s.duration] or [
        info.duration or 0.0
    ]
    if max(known) > max_seconds + LENGTH_TOLERANCE:
        raise _too_long(max(known), max_seconds)


def _peaks(y: np.ndarray, columns: int = PEAK_COLUMNS) -> np.ndarray:
    """Min and max of the samples in each of ``columns`` equal slices."""
    columns = max(1, min(columns, len(y)))
    edges = np.linspace(0, len(y), columns + 1).astype(np.int64)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    return np.round(np.stack([lo, hi]).astype(np.float64), 4)


def _times(values: np.ndarray) -> list[float]:
    return [round(float(t), 4) for t in values]


def analyze_audio(
    path: str | Path,
    *,
    sample_rate: int = 22050,
    max_seconds: float | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> AudioAnalysisResult:
    """Tempo, beats, downbeats, onsets, sections, energy and loudness of a song.

    ``max_seconds``: a file longer than this is refused (AudioAnalysisError)
    from its header, before decoding. ``on_progress`` gets a rising fraction
    in [0, 1]. Every failure a user can cause raises AudioAnalysisError with a
    one-sentence message: a file that will not decode or has no audio, audio
    shorter than 3 s, silence, or no steady beat.
    """
    report = on_progress or (lambda fraction: None)
    path = Path(path)
    report(0.0)
    _check_length(path, max_seconds)
    limit = None if max_seconds is None else max_seconds + 2 * LENGTH_TOLERANCE
    try:
        frames, native = decode_audio_native(path, max_seconds=limit)
    except AudioDecodeError as exc:
        raise AudioAnalysisError(str(exc)) from exc
    duration = len(frames) / native
    if max_seconds is not None and duration > max_seconds + LENGTH_TOLERANCE:
        raise _too_long(duration, max_seconds)  # the header understated it
    if duration < MIN_SECONDS:
        raise AudioAnalysisError(
            f"The audio is only {duration:.1f} s long; at least {MIN_SECONDS:.0f} s "
            "are needed to find a beat."
        )
    # A matrix-vector product averages the channels far faster than a
    # strided mean; the rhythm analysis then runs at ``sample_rate``.
    mix = frames @ np.full(frames.shape[1], 1 / frames.shape[1], dtype=np.float32)
    y = mix
    if native != sample_rate:
        y = librosa.resample(
            mix, orig_sr=native, target_sr=sample_rate, res_type="soxr_hq"
        )
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    if rms <= 0 or 20 * np.log10(rms) < SILENCE_DBFS:
        raise AudioAnalysisError("The audio is silent, so it has no beat to follow.")
    report(0.25)

    feat = tempo.onset_features(y, sample_rate)
    estimate = tempo.estimate_tempo(feat)
    beat_frames, beats = tempo.track_beats(feat, estimate, y)
    if beats.size < 4:
        raise AudioAnalysisError("No steady beat could be found in the audio.")
    bpm = tempo.mean_bpm(beats)
    confidence = np.sqrt(estimate.periodicity * tempo.regularity(beat_frames)) * (
        0.5 + 0.5 * estimate.certainty
    )
    report(0.55)

    # Chroma needs finer frequency resolution than the onset spectrogram but
    # only coarse time steps: it is averaged per beat and per bar.
    chroma_hop = 4 * feat.hop
    chroma = librosa.feature.chroma_stft(
        y=y, sr=sample_rate, n_fft=8 * feat.hop, hop_length=chroma_hop, tuning=0.0
    )
    beat_samples = np.round(beats * sample_rate).astype(np.int64)
    kick = meter.beat_strength(feat.low_envelope, beat_frames)
    change = meter.chord_change(
        meter.segment_means(chroma, chroma_hop, beat_samples, len(y))
    )
    beats_per_bar, _ = meter.detect_meter(kick, change)
    phase = meter.bar_phase(kick, change, beats_per_bar)
    downbeats = beats[phase::beats_per_bar]
    report(0.7)

    power = loudness.KPower(frames, native)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(feat.mel), n_mfcc=13)[1:]
    bars = sections.bar_features(
        bar_starts=np.round(downbeats * sample_rate).astype(np.int64),
        total=len(y),
        sample_rate=sample_rate,
        chroma=chroma,
        chroma_hop=chroma_hop,
        mfcc=mfcc,
        mfcc_hop=feat.hop,
        power=power,
    )
    found = sections.find_sections(bars, downbeats, duration)
    report(0.85)

    onsets = librosa.onset.onset_detect(
        onset_envelope=feat.envelope,
        sr=sample_rate,
        hop_length=feat.hop,
        units="time",
    )
    result = AudioAnalysisResult(
        duration=round(duration, 4),
        bpm=round(bpm, 2),
        bpm_confidence=round(float(np.clip(confidence, 0.0, 1.0)), 3),
        beats=_times(beats),
        downbeats=_times(downbeats),
        onsets=_times(onsets),
        sections=found,
        energy={
            "hop_s": ENERGY_HOP_SECONDS,
            "values": loudness.loudness_curve(power, ENERGY_HOP_SECONDS, duration),
        },
        meter=beats_per_bar,
        tempo_curve=tempo.tempo_curve(beats, bpm),
        loudness_lufs=round(loudness.integrated_loudness(power), 2),
        peaks=_peaks(y),
    )
    report(1.0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.audio.analysis",
        description="Analyze a song: tempo, beats, downbeats, sections, energy.",
    )
    parser.add_argument("path", type=Path, help="audio file")
    parser.add_argument("--json", action="store_true", help="print the analysis")
    parser.add_argument("--svg", type=Path, help="also draw the song to this SVG")
    parser.add_argument("--max-seconds", type=float, help="refuse longer files")
    args = parser.parse_args(argv)
    try:
        result = analyze_audio(args.path, max_seconds=args.max_seconds)
    except AudioAnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.svg:
        args.svg.write_text(result.to_svg(), encoding="utf-8")
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(
            f"{result.bpm:.1f} BPM ({result.bpm_confidence:.2f}), "
            f"{result.meter}/4, {len(result.beats)} beats, "
            f"{len(result.sections)} sections, {result.loudness_lufs:.1f} LUFS"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
