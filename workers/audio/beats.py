"""Tempo, beats, downbeats and onsets of a song.

One decode, one spectrogram: the full-band onset envelope drives librosa's
dynamic-programming beat tracker; the low band (kick and bass, below about
150 Hz) decides which beat of each bar is the downbeat, with chord changes as
the tie-breaker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import librosa
import numpy as np
from scipy.ndimage import median_filter

from workers.audio.decode import decode_audio

HOP_SECONDS = 0.0232  # 512 samples at 22.05 kHz
MIN_SECONDS = 3.0
SILENCE_DBFS = -60.0
LOW_BAND_HZ = 150.0
LIVE_DB = -40.0  # beats at the ends quieter than this (re the peak) are dropped
FINE_HOP = 64  # ~3 ms at 22.05 kHz: where each beat's onset is looked up
REFINE_SECONDS = 0.025  # how far a beat may move to its onset


class AudioAnalysisError(ValueError):
    """The audio cannot be analyzed; the message is fit to show a user."""


@dataclass
class BeatAnalysis:
    duration: float
    bpm: float
    bpm_confidence: float  # 0..1
    beats: list[float] = field(default_factory=list)
    downbeats: list[float] = field(default_factory=list)
    onsets: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _tempo_confidence(envelope: np.ndarray, period: float) -> float:
    """How strongly the onset envelope repeats at the beat period, in [0, 1].

    The normalized autocorrelation at the period (best of the neighbouring lags,
    as the period falls between frames) is 1 for a perfectly periodic pulse and
    near 0 for noise or music without a steady beat.
    """
    env = envelope - envelope.mean()
    ac = librosa.autocorrelate(env)
    if ac[0] <= 0 or period < 1:
        return 0.0
    lo, hi = int(np.floor(period)), int(np.ceil(period)) + 1
    peak = float(ac[lo : hi + 1].max() / ac[0])
    return float(np.clip(peak, 0.0, 1.0))


def _regularity(beat_frames: np.ndarray) -> float:
    """1 for evenly spaced beats, falling as their spacing wanders.

    Spacing is compared with the local median (so slow tempo drift is not
    penalized), and the one-frame jitter that frame quantization causes is
    forgiven.
    """
    ibi = np.diff(beat_frames).astype(np.float64)
    if ibi.size < 3:
        return 0.0
    local = median_filter(ibi, size=9, mode="nearest")
    excess = np.maximum(np.abs(ibi - local) - 1.0, 0.0)
    return float(np.clip(1.0 - 5.0 * excess.mean() / np.median(ibi), 0.0, 1.0))


def _beat_strength(envelope: np.ndarray, beat_frames: np.ndarray) -> np.ndarray:
    # The strongest value within a frame of each beat: beat times are only
    # frame-accurate.
    padded = np.pad(envelope, 1)
    idx = np.minimum(beat_frames, len(envelope) - 1)
    return np.maximum.reduce([padded[idx], padded[idx + 1], padded[idx + 2]])


def _chord_change(chroma: np.ndarray, beat_frames: np.ndarray) -> np.ndarray:
    """How much the harmony changes at each beat (0 same, 1 unrelated)."""
    sync = librosa.util.sync(chroma, beat_frames.tolist(), aggregate=np.median)
    sync = sync / (np.linalg.norm(sync, axis=0, keepdims=True) + 1e-9)
    # Segment j runs from beat j-1 to beat j, so beat k starts segment k+1.
    change = 1.0 - (sync[:, 1:] * sync[:, :-1]).sum(axis=0)
    return np.asarray(change[: len(beat_frames)])


def _bar_phase(
    low_env: np.ndarray,
    chroma: np.ndarray,
    beat_frames: np.ndarray,
    beats_per_bar: int,
) -> int:
    """Index of the first downbeat among the beats.

    Kick drums land hardest on beat 1, so the phase whose beats carry the most
    low-band onset energy wins; chords usually change there too, which settles
    songs whose kicks on 1 and 3 are equally strong.
    """
    if len(beat_frames) < 2 * beats_per_bar or beats_per_bar < 2:
        return 0

    def by_phase(values: np.ndarray) -> np.ndarray:
        phases = range(beats_per_bar)
        means = np.array([values[p::beats_per_bar].mean() for p in phases])
        return means / (means.mean() + 1e-9)

    kick = by_phase(_beat_strength(low_env, beat_frames))
    harmony = by_phase(_chord_change(chroma, beat_frames))
    return int(np.argmax(kick + 0.5 * harmony))


def _refine_to_onsets(beats: np.ndarray, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Move each beat to the sharpest onset within ``REFINE_SECONDS`` of it.

    The tracker's beats sit on its ~23 ms analysis grid, so a beat can be
    half a video frame late before any cut is planned on it. A fine onset
    envelope (~3 ms) puts it on the attack itself; a beat with no onset
    nearby (a rest, a held note) keeps its grid time.
    """
    power = np.abs(librosa.stft(y, n_fft=4 * FINE_HOP, hop_length=FINE_HOP)) ** 2
    fine = librosa.onset.onset_strength(
        S=librosa.power_to_db(power, ref=np.max),
        sr=sample_rate,
        hop_length=FINE_HOP,
        center=False,
    )
    times = librosa.frames_to_time(
        np.arange(fine.size), sr=sample_rate, hop_length=FINE_HOP
    )
    floor = 2.0 * float(np.median(fine)) + 1e-9
    refined = beats.copy()
    for i, beat in enumerate(beats):
        lo, hi = np.searchsorted(times, [beat - REFINE_SECONDS, beat + REFINE_SECONDS])
        if hi - lo < 3:
            continue
        peak = lo + int(np.argmax(fine[lo:hi]))
        if fine[peak] > floor:
            refined[i] = times[peak]
    return refined


def _trim_silent_ends(beat_frames: np.ndarray, y: np.ndarray, hop: int) -> np.ndarray:
    """Drop leading and trailing beats that fall where the audio is silent
    (the tracker keeps its grid going through silence)."""
    if beat_frames.size < 2:
        return beat_frames
    rms = librosa.feature.rms(y=y, frame_length=2 * hop, hop_length=hop)[0]
    level = 20 * np.log10(np.maximum(rms, 1e-10) / max(float(rms.max()), 1e-10))
    half = max(int(np.median(np.diff(beat_frames)) // 2), 1)
    live = np.array(
        [level[max(f - half, 0) : f + half + 1].max() > LIVE_DB for f in beat_frames]
    )
    if not live.any():
        return beat_frames[:0]
    first = int(np.argmax(live))
    last = len(live) - int(np.argmax(live[::-1]))
    return beat_frames[first:last]


def analyze_beats(
    path: str | Path,
    *,
    sample_rate: int = 22050,
    beats_per_bar: int = 4,
    max_seconds: float | None = None,
) -> BeatAnalysis:
    """Find tempo, beats, downbeats and onsets of the song at ``path``.

    Times are seconds from the start of the file. ``bpm`` is fitted to the beat
    times; ``bpm_confidence`` combines how periodic the onsets are at that
    tempo with how even the beat spacing is. Raises AudioDecodeError for files
    that do not decode and AudioAnalysisError for audio too short (< 3 s),
    silent, or without a beat.
    """
    if beats_per_bar < 1:
        raise ValueError("beats_per_bar must be at least 1")
    y = decode_audio(path, sample_rate=sample_rate, mono=True, max_seconds=max_seconds)
    duration = len(y) / sample_rate
    if duration < MIN_SECONDS:
        raise AudioAnalysisError(
            f"The audio is only {duration:.1f} s long; at least {MIN_SECONDS:.0f} s "
            "are needed to find a beat."
        )
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    if rms <= 0 or 20 * np.log10(rms) < SILENCE_DBFS:
        raise AudioAnalysisError("The audio is silent, so it has no beat to follow.")

    hop = int(2 ** round(np.log2(sample_rate * HOP_SECONDS)))
    # A 2-hop window keeps onsets sharp in time; 64 mel bands suit its resolution.
    power = np.abs(librosa.stft(y, n_fft=2 * hop, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=64)
    mel_db = librosa.power_to_db(mel, ref=np.max)
    # center=False: the spectrogram frames are already centred, and letting
    # onset_strength shift again would put every beat ~30 ms late.
    envelope = librosa.onset.onset_strength(
        S=mel_db, sr=sample_rate, hop_length=hop, center=False
    )
    mel_hz = librosa.mel_frequencies(n_mels=64, fmax=sample_rate / 2)
    low_bins = max(int(np.searchsorted(mel_hz, LOW_BAND_HZ)), 2)
    # Linear power, not dB: the accent on beat 1 is a level difference that
    # log compression would mostly flatten.
    low_env = librosa.onset.onset_strength(
        S=mel[:low_bins], sr=sample_rate, hop_length=hop, center=False
    )

    # librosa's own trimming drops every beat weaker than half the typical
    # one, which loses quiet intros; only silent ends are trimmed here.
    _, beat_frames = librosa.beat.beat_track(
        onset_envelope=envelope, sr=sample_rate, hop_length=hop, trim=False
    )
    beat_frames = _trim_silent_ends(np.asarray(beat_frames, dtype=np.int64), y, hop)
    # The tracker likes to end on the very last frame, whose window runs past
    # the end of the audio: no onset there can confirm a beat.
    beat_frames = beat_frames[beat_frames < len(envelope) - 2]
    if beat_frames.size < 4:
        raise AudioAnalysisError("No steady beat could be found in the audio.")
    beats = librosa.frames_to_time(beat_frames, sr=sample_rate, hop_length=hop)
    beats = _refine_to_onsets(beats, y, sample_rate)

    # A straight line through the beat times: its slope is the beat period,
    # finer than the tracker's frame-quantized tempo.
    slope = float(np.polyfit(np.arange(beats.size), beats, 1)[0])
    bpm = 60.0 / slope if slope > 0 else 0.0
    period_frames = slope * sample_rate / hop
    confidence = np.sqrt(
        _tempo_confidence(envelope, period_frames) * _regularity(beat_frames)
    )

    # Chroma needs finer frequency resolution than the onset spectrogram.
    chroma = librosa.feature.chroma_stft(
        y=y, sr=sample_rate, n_fft=8 * hop, hop_length=hop
    )
    phase = _bar_phase(low_env, chroma, beat_frames, beats_per_bar)
    onsets = librosa.onset.onset_detect(
        onset_envelope=envelope, sr=sample_rate, hop_length=hop, units="time"
    )
    return BeatAnalysis(
        duration=duration,
        bpm=round(bpm, 2),
        bpm_confidence=round(float(confidence), 3),
        beats=[round(float(t), 4) for t in beats],
        downbeats=[round(float(t), 4) for t in beats[phase::beats_per_bar]],
        onsets=[round(float(t), 4) for t in onsets],
    )
