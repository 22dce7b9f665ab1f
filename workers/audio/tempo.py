"""Tempo, beats and the tempo curve.

One spectrogram feeds everything: a log-mel spectral flux (the onset envelope)
drives librosa's dynamic-programming beat tracker, whose tempo is chosen here
rather than left to librosa's fixed 120 BPM prior, which halves fast songs and
doubles slow ones.

Choosing the tempo. The strongest peaks of an autocorrelation tempogram
(8-second windows), folded into 50-200 BPM, and their halves and doubles are
the candidates. Each is tracked, and its beats are judged on a
loudness-weighted onset envelope (mel power ** 0.3, where a snare outweighs a
hi-hat): a level too fast alternates strong beats with weak off-beats, a
grid at 3:2 or 2:3 of the real one lands on weaker onsets than the real one
(its salience), and a level too slow finds real beats halfway between its
own. A broad prior around 120 BPM settles what that evidence leaves open.
The weights were fitted on random synthetic songs other than the
benchmark's (see tests/benchmarks/README.md).

Following it. Where the tempogram's local period wanders more than 3%, the
tracker follows the local tempo frame by frame. The final tracking runs on
the envelope interpolated to half frames (whole 23 ms frames would round the
period by up to 4% at 190 BPM) with a tighter period, and each beat is then
moved onto its attack on a 3 ms onset envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

HOP_SECONDS = 0.0232  # 512 samples at 22.05 kHz
N_MELS = 64
LOW_BAND_HZ = 150.0
MIN_BPM, MAX_BPM = 50.0, 200.0
# How strictly the tracker keeps the period: librosa's default while the
# candidates are judged; stricter for the final beats, so that a stretch of
# strong off-beats (a syncopated outro) cannot pull the grid half a beat over.
TIGHTNESS = 100.0
FINAL_TIGHTNESS = 400.0
PRIOR_BPM = 120.0
PRIOR_OCTAVES = 1.0  # standard deviation of the log2 tempo prior
PRIOR_WEIGHT = 1.0
# Weights of the evidence for a metrical level, fitted on 60 random synthetic
# songs (not the benchmark's): alternation of strong and weak beats is the
# clearest sign of a level too fast, salience of a grid at the wrong ratio.
HALVES_WEIGHT = 0.25
ALTERNATION_WEIGHT = 2.0
SALIENCE_WEIGHT = 1.5
TEMPOGRAM_SECONDS = 8.0
TEMPOGRAM_STEP = 4  # frames between tempogram columns (~93 ms)
CANDIDATE_PEAKS = 4  # autocorrelation peaks whose tempi are tracked
LOCAL_OCTAVES = 0.25  # how far from the song's tempo a local tempo may stray
TRUSTED_SHARE = 0.6  # local periodicity, re the song's upper quartile, to trust
STEADY_SPREAD = 0.03  # a local tempo within +-3% of its median is one tempo
LIVE_DB = -40.0  # beats at the ends quieter than this (re the peak) are dropped
FINE_HOP = 64  # ~3 ms at 22.05 kHz: where each beat's onset is looked up
REFINE_SECONDS = 0.025  # how far a beat may move to its onset
TRAILING_SHARE = 0.3  # a last beat weaker than this share of the median goes


@dataclass
class OnsetFeatures:
    sample_rate: int
    hop: int
    mel: np.ndarray  # (N_MELS, frames) power
    envelope: np.ndarray  # log-mel spectral flux: what the beat tracker follows
    low_envelope: np.ndarray  # linear-power flux below LOW_BAND_HZ: the kick
    accent: np.ndarray  # flux of mel power ** 0.3: loud hits outweigh quiet ones

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def times(self, frames: np.ndarray) -> np.ndarray:
        return np.asarray(frames, dtype=np.float64) * self.hop / self.sample_rate


@dataclass
class Tempo:
    bpm: float  # the chosen beat level, from the whole song
    frame_bpm: np.ndarray | None  # tempo per frame where it changes, else None
    periodicity: float  # 0..1: how strongly the onsets repeat at the beat period
    certainty: float  # 0..1: how clearly this tempo beat its half and double


def onset_features(y: np.ndarray, sample_rate: int) -> OnsetFeatures:
    hop = int(2 ** round(np.log2(sample_rate * HOP_SECONDS)))
    # A 2-hop window keeps onsets sharp in time; 64 mel bands suit its resolution.
    power = np.abs(librosa.stft(y, n_fft=2 * hop, hop_length=hop)) ** 2
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_mels=N_MELS)
    # center=False: the spectrogram frames are already centred, and letting
    # onset_strength shift again would put every beat ~30 ms late.
    envelope = librosa.onset.onset_strength(
        S=librosa.power_to_db(mel, ref=np.max),
        sr=sample_rate,
        hop_length=hop,
        center=False,
    )
    mel_hz = librosa.mel_frequencies(n_mels=N_MELS, fmax=sample_rate / 2)
    low_bins = max(int(np.searchsorted(mel_hz, LOW_BAND_HZ)), 2)
    # Linear power, not dB: the accent on beat 1 is a level difference that
    # log compression would mostly flatten.
    low = librosa.onset.onset_strength(
        S=mel[:low_bins], sr=sample_rate, hop_length=hop, center=False
    )
    # The dB flux hears a quiet hi-hat as clearly as a snare; judging which
    # pulse is the beat needs the loud hits to count for more.
    accent = librosa.onset.onset_strength(
        S=(mel / max(float(mel.max()), 1e-20)) ** 0.3,
        sr=sample_rate,
        hop_length=hop,
        center=False,
    )
    return OnsetFeatures(sample_rate, hop, mel, envelope, low, accent)


def _parabolic(values: np.ndarray, i: int) -> float:
    """Sub-sample position of the peak at ``i`` from its two neighbours."""
    if i <= 0 or i >= len(values) - 1:
        return float(i)
    a, b, c = values[i - 1], values[i], values[i + 1]
    den = a - 2 * b + c
    return float(i + 0.5 * (a - c) / den) if den < 0 else float(i)


def _log_prior(bpm: float) -> float:
    return float(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)


def _track(
    feat: OnsetFeatures, bpm: float | np.ndarray, tightness: float = TIGHTNESS
) -> np.ndarray:
    _, frames = librosa.beat.beat_track(
        onset_envelope=feat.envelope,
        sr=feat.sample_rate,
        hop_length=feat.hop,
        bpm=bpm,
        trim=False,
        tightness=tightness,
    )
    return np.asarray(frames, dtype=np.int64)


def _level_evidence(envelope: np.ndarray, beats: np.ndarray) -> tuple[float, float]:
    """How much ``beats`` look like the beat level of the music: (r, a).

    r compares the strongest onset halfway between beats (a window wide
    enough for swung eighths) with the onsets on the beats: a level too slow
    has real beats halfway, r near 1. a compares even with odd beats: a level
    too fast alternates beats with off-beats, a well below 1.
    """
    if beats.size < 9:
        return 1.0, 0.0
    n = len(envelope)
    on, half = [], []
    for a, b in zip(beats[:-1], beats[1:], strict=True):
        on.append(envelope[max(a - 1, 0) : min(a + 2, n)].max())
        lo = a + int(round(0.4 * (b - a)))
        hi = min(a + int(round(0.72 * (b - a))) + 1, n)
        half.append(envelope[lo:hi].max() if hi > lo else 0.0)
    on_arr, half_arr = np.asarray(on), np.asarray(half)
    r = float(half_arr.mean() / (on_arr.mean() + 1e-9))
    if r > 1:  # the tracker took the off-beats; judge the level, not the phase
        r, on_arr = 1 / r, half_arr
    even, odd = float(on_arr[0::2].mean()), float(on_arr[1::2].mean())
    alternation = min(even, odd) / (max(even, odd) + 1e-9)
    return float(np.clip(r, 0.0, 1.0)), float(np.clip(alternation, 0.0, 1.0))


def _candidates(ac: np.ndarray, frame_rate: float) -> list[float]:
    """Tempi worth tracking: the strongest autocorrelation peaks, folded into
    the tempo range, with their halves and doubles."""
    lags = np.arange(2, len(ac) - 1)
    is_peak = (ac[lags] > ac[lags - 1]) & (ac[lags] >= ac[lags + 1])
    peaks = lags[is_peak]
    peaks = peaks[60.0 * frame_rate / peaks <= 2 * MAX_BPM]
    found: list[float] = []
    for lag in peaks[np.argsort(-ac[peaks])][:CANDIDATE_PEAKS]:
        bpm = 60.0 * frame_rate / _parabolic(ac, int(lag))
        while bpm > MAX_BPM:
            bpm /= 2
        while bpm < MIN_BPM:
            bpm *= 2
        for option in (bpm / 2, bpm, bpm * 2):
            if MIN_BPM <= option <= MAX_BPM and all(
                abs(option / other - 1) > 0.03 for other in found
            ):
                found.append(option)
    return found or [PRIOR_BPM]


def _local_tempo(
    tg: np.ndarray, centre: float, frame_rate: float
) -> tuple[np.ndarray, float]:
    """Tempo per frame near the lag ``centre``, and the median periodicity.

    Each frame's autocorrelation peak is taken near the centre, favouring
    lags close to it so that a stretch with another strong periodicity (a
    dotted rhythm, a bar-long pattern) is not read as a tempo change. Where
    there is no clear peak (a sparse intro, a break) the local tempo is a
    guess, so those frames are bridged from their trustworthy neighbours.
    """
    win = tg.shape[0]
    lo, hi = max(int(centre / 1.3), 2), min(int(np.ceil(centre * 1.3)), win - 3)
    band = tg[lo - 1 : hi + 2]  # one lag of margin each side for the peak test
    lag_of_row = np.arange(lo - 1, hi + 2)
    closeness = np.exp(-0.5 * (np.log2(lag_of_row / centre) / LOCAL_OCTAVES) ** 2)
    inner = slice(1, band.shape[0] - 1)
    idx = 1 + np.argmax((band * closeness[:, None])[inner], axis=0)
    cols = np.arange(band.shape[1])
    a, b, c = band[idx - 1, cols], band[idx, cols], band[idx + 1, cols]
    den = a - 2 * b + c
    shift = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    local = 60.0 * frame_rate / (lag_of_row[idx] + np.clip(shift, -0.5, 0.5))
    trusted = (b >= a) & (b >= c) & (b >= TRUSTED_SHARE * np.percentile(b, 75))
    if trusted.sum() >= 2:
        frames = np.arange(local.size)
        local = np.interp(frames, frames[trusted], local[trusted])
    return local, float(np.clip(np.median(b), 0.0, 1.0))


def _tempogram(envelope: np.ndarray, win: int, step: int) -> np.ndarray:
    """Autocorrelation tempogram, one column every ``step`` frames.

    As librosa's (centred windows, ramp padding, Hann window, each column
    normalized by its lag-0 value), but the local tempo changes slowly
    enough that a column every ~0.1 s does, at a quarter of the cost.
    """
    half = win // 2
    padded = np.pad(envelope, half, mode="linear_ramp", end_values=(0, 0))
    frames = librosa.util.frame(padded, frame_length=win, hop_length=step)
    frames = frames[:, : (len(envelope) - 1) // step + 1] * np.hanning(win)[:, None]
    spectrum = np.fft.rfft(frames, n=2 * win, axis=0)
    ac = np.fft.irfft(np.abs(spectrum) ** 2, n=2 * win, axis=0)[:win]
    return ac / np.maximum(np.abs(ac).max(axis=0, keepdims=True), 1e-12)


def estimate_tempo(feat: OnsetFeatures) -> Tempo:
    """The beat level's tempo, and its course through the song if it moves."""
    fr = feat.frame_rate
    win = int(round(TEMPOGRAM_SECONDS * fr))
    # Without its local mean the envelope's autocorrelation has clear peaks
    # instead of a high plateau.
    detrended = feat.envelope - uniform_filter1d(feat.envelope, size=max(int(fr), 1))
    tg = _tempogram(detrended, win, TEMPOGRAM_STEP)
    ac = tg.mean(axis=1)
    judged = []
    mean_onset = float(feat.envelope.mean()) + 1e-9
    for bpm in _candidates(ac, fr):
        beats = _track(feat, bpm)
        halves, alternation = _level_evidence(feat.accent, beats)
        # Salience: how much stronger than average the onsets on the beats
        # are. A grid at 3:2 or 2:3 of the real one misses most of them.
        salience = float(feat.envelope[beats].mean()) / mean_onset if beats.size else 0
        score = (
            HALVES_WEIGHT * np.log(1 - halves + 1e-3)
            + ALTERNATION_WEIGHT * np.log(alternation + 1e-3)
            + SALIENCE_WEIGHT * np.log(salience + 1e-3)
            + PRIOR_WEIGHT * _log_prior(bpm)
        )
        judged.append((score, bpm))
    judged.sort(reverse=True)
    best, chosen = judged[0]
    # Certainty is the lead over the best rival at another metrical level;
    # neighbours within 15% are the same tempo, read off a ramp or a blur.
    rivals = [score for score, bpm in judged[1:] if abs(np.log(bpm / chosen)) > 0.15]
    margin = best - max(rivals) if rivals else 3.0
    certainty = float(1.0 - np.exp(-max(margin, 0.0)))

    local, periodicity = _local_tempo(tg, 60.0 * fr / chosen, fr)
    # Over a tempo ramp the whole-song peak sits off the middle of the ramp:
    # centre the local search on the local tempi once more.
    middle = float(np.median(local))
    if abs(middle / chosen - 1) > STEADY_SPREAD:
        local, periodicity = _local_tempo(tg, 60.0 * fr / middle, fr)
    col_rate = fr / TEMPOGRAM_STEP
    smooth = uniform_filter1d(
        median_filter(local, size=max(int(3 * col_rate), 1), mode="nearest"),
        size=max(int(2 * col_rate), 1),
        mode="nearest",
    )
    # The tempogram windows at the ends are padded; trust the middle.
    edge = win // (2 * TEMPOGRAM_STEP)
    core = smooth[edge:-edge] if smooth.size > 4 * edge else smooth
    median = float(np.median(core))
    spread = max(abs(np.percentile(core, 95) / median - 1),
                 abs(np.percentile(core, 5) / median - 1))  # fmt: skip
    frame_bpm = None
    if spread > STEADY_SPREAD and abs(median / chosen - 1) < 0.15:
        n = len(feat.envelope)
        frame_bpm = np.interp(
            np.arange(n), np.arange(smooth.size) * TEMPOGRAM_STEP, smooth
        )
    return Tempo(chosen, frame_bpm, periodicity, certainty)


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


def track_beats(
    feat: OnsetFeatures, tempo: Tempo, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Beat frames (the analysis grid) and beat times refined to the attacks.

    The tracker measures the beat period in whole frames, which at 23 ms
    frames is up to 4% off at 190 BPM; on an envelope interpolated to half
    frames it keeps a tight grid at any tempo.
    """
    n = len(feat.envelope)
    half = np.arange(2 * n - 1) / 2
    envelope = np.interp(half, np.arange(n), feat.envelope)
    bpm: float | np.ndarray = tempo.bpm
    if tempo.frame_bpm is not None:
        bpm = np.interp(half, np.arange(n), tempo.frame_bpm)
    # librosa's own trimming drops every beat weaker than half the typical
    # one, which loses quiet intros; only silent ends are trimmed here.
    _, fine = librosa.beat.beat_track(
        onset_envelope=envelope,
        sr=feat.sample_rate,
        hop_length=feat.hop // 2,
        bpm=bpm,
        trim=False,
        tightness=FINAL_TIGHTNESS,
    )
    fine = np.asarray(fine, dtype=np.int64)
    keep = _trim_silent_ends(fine, y, feat.hop // 2)
    # The tracker likes to end on the very last frame, whose window runs past
    # the end of the audio: no onset there can confirm a beat.
    keep = keep[keep < 2 * (n - 2)]
    # Nor can a beat in the fade after the last hit, where the tracker just
    # keeps counting: trailing beats with next to no onset go.
    if keep.size > 4:
        strength = np.array([envelope[max(k - 2, 0) : k + 3].max() for k in keep])
        weak = strength < TRAILING_SHARE * float(np.median(strength))
        while keep.size > 4 and weak[keep.size - 1]:
            keep = keep[:-1]
    if keep.size == 0:
        return keep, np.zeros(0)
    times = keep * (feat.hop // 2) / feat.sample_rate
    frames = np.round(keep / 2).astype(np.int64)
    return frames, _refine_to_onsets(times, y, feat.sample_rate)


def regularity(beat_frames: np.ndarray) -> float:
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


def mean_bpm(beats: np.ndarray) -> float:
    """The mean tempo: a straight line through the beat times, finer than the
    tracker's frame-quantized tempo."""
    if beats.size < 2:
        return 0.0
    slope = float(np.polyfit(np.arange(beats.size), beats, 1)[0])
    return 60.0 / slope if slope > 0 else 0.0


def _simplify(t: np.ndarray, v: np.ndarray, tol: float) -> list[int]:
    """Indices of a Ramer-Douglas-Peucker simplification of (t, v) within
    ``tol`` (in v's units, measured vertically)."""
    keep = {0, len(t) - 1}
    stack = [(0, len(t) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        line = v[i] + (v[j] - v[i]) * (t[i + 1 : j] - t[i]) / (t[j] - t[i])
        err = np.abs(v[i + 1 : j] - line)
        k = int(np.argmax(err))
        if err[k] > tol:
            keep.add(i + 1 + k)
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return sorted(keep)


def tempo_curve(beats: np.ndarray, bpm: float) -> list[dict[str, float]]:
    """The tempo through the song as a few (time, bpm) points, linear between.

    Local tempo from the beat spacing, smoothed over about two bars; a song
    whose tempo stays within 2% of its mean gets one point.
    """
    if beats.size < 8:
        return [{"time": round(float(beats[0]), 3) if beats.size else 0.0,
                 "bpm": round(bpm, 2)}]  # fmt: skip
    ibi = np.diff(beats)
    t = beats[:-1] + ibi / 2
    # "mirror" padding: "nearest" would repeat an odd last interval (a beat
    # in the final fade) until it outvoted its neighbours.
    local = 60.0 / median_filter(ibi, size=9, mode="mirror")
    local = uniform_filter1d(local, size=9, mode="mirror")
    tol = max(1.0, 0.02 * bpm)
    if np.abs(local - bpm).max() <= tol:
        return [{"time": round(float(beats[0]), 3), "bpm": round(bpm, 2)}]
    return [
        {"time": round(float(t[i]), 3), "bpm": round(float(local[i]), 2)}
        for i in _simplify(t, local, tol)
    ]
