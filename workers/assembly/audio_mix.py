"""Mix a timeline's audio tracks into the soundtrack, loudness-normalised.

One ffmpeg filtergraph does the mix (``mix_filtergraph``)::

    [i:a] aformat(fltp, rate, stereo) -> atrim(start=offset) -> asetpts
          -> adelay(start) -> volume(gain_db) -> afade in -> afade out
          -> apad(whole_dur=duration) -> atrim(end_sample)      [m0] [m1] .. [v0] ..
    music tracks: amix(normalize=0)                              -> [music]
    voice tracks: amix(normalize=0) -> asplit                    -> [vkey] [vmix]
    [music][vkey] sidechaincompress (ducking)                    -> [ducked]
    [ducked][vmix] amix(normalize=0)                             -> [mix]

``mix_audio`` renders the mix once to a float WAV (the premix), measures its
integrated loudness (BS.1770, ``workers.audio.loudness``) and true peak (4x
oversampling, BS.1770 Annex 2) in numpy, then makes the soundtrack from the
premix in one cheap pass: a plain gain to the target (so the mix's dynamics
and the ducking stay as they are, as loudnorm's linear mode would), a
sample-peak ``alimiter`` kept a little under the true-peak ceiling for
inter-sample overs, and an exact trim to the duration. The written file is
measured again for the report. (Measuring with ffmpeg's loudnorm meant two
full renders of the graph plus its own 4x analysis: about three times the
work for the same gain.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.signal import resample_poly

from workers.assembly.ffmpeg import (
    demuxer_name,
    input_args,
    run_ffmpeg,
)
from workers.audio.decode import decode_audio_native
from workers.audio.loudness import KPower, integrated_loudness
from workers.probe import ProbeError, probe_media

# Ducking, tuned for speech over music. The key is the voice bus itself.
# threshold 0.02 (-34 dBFS): any spoken phrase at a normal level (around
#   -20 dBFS RMS) is well above it, room tone and breaths are not.
# ratio 8: a phrase 14 dB over the threshold pulls the music down ~12 dB.
# attack 20 ms: fast enough that the first syllable is not masked, slow
#   enough not to click.
# release 400 ms: the music comes back between sentences, not between words.
DUCK_THRESHOLD = 0.02
DUCK_RATIO = 8.0
DUCK_ATTACK_MS = 20.0
DUCK_RELEASE_MS = 400.0
LOUDNORM_LRA = 11.0
# alimiter works on sample peaks; this margin covers inter-sample overs.
LIMITER_MARGIN_DB = 0.5
MAX_RENDERS = 6
SILENCE_LUFS = -69.9  # BS.1770's absolute gate is -70
LOUDNESS_TOLERANCE_LU = 0.5  # closer than this to the target is done
# resample_poly's filter for 4x reaches 10 input samples either side; with
# this much context a block oversamples exactly as the whole signal would.
_TP_PAD = 64


class TrackLike(Protocol):
    """What the mixer reads from a track (``timeline.AudioTrack`` fits)."""

    @property
    def file(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def gain_db(self) -> float: ...
    @property
    def fade_in(self) -> float: ...
    @property
    def fade_out(self) -> float: ...
    @property
    def start(self) -> float: ...
    @property
    def offset(self) -> float: ...


@dataclass(frozen=True)
class MixReport:
    integrated_lufs: float
    true_peak_db: float
    duration: float


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def _validate(tracks: Sequence[TrackLike], duration: float) -> None:
    if not tracks:
        raise ValueError("no audio tracks to mix")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive number of seconds: {duration}")
    for i, t in enumerate(tracks):
        if t.role not in ("music", "voice"):
            raise ValueError(f"track {i}: role must be music or voice, not {t.role!r}")
        for name in ("start", "offset", "fade_in", "fade_out"):
            value = float(getattr(t, name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"track {i}: {name} must be >= 0 seconds: {value}")
        if not math.isfinite(float(t.gain_db)):
            raise ValueError(f"track {i}: gain_db must be a finite number")


def track_lengths(tracks: Sequence[TrackLike], duration: float) -> list[float]:
    """How long each track plays on the timeline (file length after its
    offset, cut at ``duration``); checks the files and the fades."""
    return [length for length, _ in _tracks(tracks, duration)]


def _tracks(tracks: Sequence[TrackLike], duration: float) -> list[tuple[float, str]]:
    """Each track's length on the timeline and the demuxer to force on it
    (a playlist or concat script posing as audio is refused, so a track can
    never pull in other files)."""
    _validate(tracks, duration)
    found = []
    for i, t in enumerate(tracks):
        path = Path(t.file)
        if not path.is_file():
            raise ValueError(f"track {i}: file not found: {t.file}")
        try:
            info = probe_media(path)
        except ProbeError as exc:
            raise ValueError(f"track {i}: cannot read {path.name}: {exc}") from None
        streams = info.of_kind("audio")
        if not streams:
            raise ValueError(f"track {i}: {path.name} has no audio")
        file_len = streams[0].duration or info.duration
        if file_len is None:
            raise ValueError(f"track {i}: the length of {path.name} is unknown")
        if t.offset >= file_len:
            raise ValueError(
                f"track {i}: offset {t.offset} s is past the end of {path.name}"
                f" ({file_len:.3f} s)"
            )
        fmt = demuxer_name(info.format_name)
        if fmt is None:
            raise ValueError(f"track {i}: {path.name} is not a plain audio file")
        found.append((max(0.0, min(file_len - t.offset, duration - t.start)), fmt))
    return found


def _check_fades(tracks: Sequence[TrackLike], lengths: Sequence[float]) -> None:
    for i, (t, length) in enumerate(zip(tracks, lengths, strict=True)):
        if t.fade_in + t.fade_out > length + 1e-6:
            raise ValueError(
                f"track {i}: fades ({t.fade_in} s in + {t.fade_out} s out) are"
                f" longer than the track plays ({length:.3f} s)"
            )


def mix_filtergraph(
    tracks: Sequence[TrackLike],
    *,
    duration: float,
    lengths: Sequence[float] | None = None,
    sample_rate: int = 48000,
    first_input: int = 0,
    out_label: str = "mix",
) -> str:
    """The mixing filtergraph (no normalisation) for ``tracks`` read from
    inputs ``first_input``, ``first_input + 1``...; ends in ``[out_label]``.

    ``lengths`` (seconds each track plays, see ``track_lengths``) places the
    fade-outs; without it a track is assumed to play to ``duration``.
    """
    _validate(tracks, duration)
    if lengths is None:
        lengths = [max(0.0, duration - t.start) for t in tracks]
    if len(lengths) != len(tracks):
        raise ValueError("lengths must give one length per track")
    _check_fades(tracks, lengths)
    n_samples = int(round(duration * sample_rate))
    chains: list[str] = []
    music: list[str] = []
    voice: list[str] = []
    for i, (t, length) in enumerate(zip(tracks, lengths, strict=True)):
        label = f"{'m' if t.role == 'music' else 'v'}{i}"
        steps = [
            f"aformat=sample_fmts=fltp:sample_rates={sample_rate}"
            ":channel_layouts=stereo",
            f"atrim=start={_num(t.offset)}",
            "asetpts=PTS-STARTPTS",
        ]
        if t.start > 0:
            steps.append(f"adelay=delays={int(round(t.start * 1000))}:all=1")
        if t.gain_db:
            steps.append(f"volume={_num(t.gain_db)}dB")
        if t.fade_in > 0:
            steps.append(f"afade=t=in:st={_num(t.start)}:d={_num(t.fade_in)}")
        if t.fade_out > 0:
            end = t.start + length
            steps.append(
                f"afade=t=out:st={_num(end - t.fade_out)}:d={_num(t.fade_out)}"
            )
        steps += [f"apad=whole_len={n_samples}", f"atrim=end_sample={n_samples}"]
        chains.append(f"[{first_input + i}:a]" + ",".join(steps) + f"[{label}]")
        (music if t.role == "music" else voice).append(label)

    def bus(labels: list[str], name: str) -> None:
        if len(labels) == 1:
            chains.append(f"[{labels[0]}]anull[{name}]")
        else:
            ins = "".join(f"[{x}]" for x in labels)
            chains.append(
                f"{ins}amix=inputs={len(labels)}:normalize=0:duration=longest[{name}]"
            )

    if music and voice:
        bus(music, "music")
        bus(voice, "voice")
        chains.append("[voice]asplit=2[vkey][vmix]")
        chains.append(
            f"[music][vkey]sidechaincompress=threshold={_num(DUCK_THRESHOLD)}"
            f":ratio={_num(DUCK_RATIO)}:attack={_num(DUCK_ATTACK_MS)}"
            f":release={_num(DUCK_RELEASE_MS)}:detection=rms[ducked]"
        )
        chains.append(
            f"[ducked][vmix]amix=inputs=2:normalize=0:duration=first[{out_label}]"
        )
    else:
        bus(music or voice, out_label)
    return ";".join(chains)


def true_peak_dbtp(frames: np.ndarray, block: int = 1 << 16) -> float:
    """True peak in dBTP: the largest sample after 4x oversampling (BS.1770-4
    Annex 2; at 96 kHz and above oversampling is not needed).

    Oversampled a block at a time, each with ``_TP_PAD`` samples of context
    either side so the filter sees the same neighbours as in one pass: a
    three-minute mix would otherwise need over a gigabyte at once.
    """
    x = np.asarray(frames)
    if x.size == 0:
        return -math.inf
    peak = float(np.max(np.abs(x)))
    n = len(x)
    for start in range(0, n, block):
        stop = min(start + block, n)
        lo, hi = max(0, start - _TP_PAD), min(n, stop + _TP_PAD)
        # Single precision: peaks come out within 1e-6 of double, twice as fast.
        up = resample_poly(x[lo:hi].astype(np.float32), 4, 1, axis=0)
        a = (start - lo) * 4
        peak = max(peak, float(np.max(np.abs(up[a : a + (stop - start) * 4]))))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def measure(path: Path) -> MixReport:
    frames, rate = decode_audio_native(path)
    return MixReport(
        integrated_lufs=integrated_loudness(KPower(frames, rate)),
        true_peak_db=true_peak_dbtp(frames),
        duration=len(frames) / rate,
    )


def mix_audio(
    tracks: Sequence[TrackLike],
    out: Path,
    *,
    duration: float,
    target_lufs: float = -14.0,
    true_peak_db: float = -1.0,
    sample_rate: int = 48000,
) -> MixReport:
    """Render the soundtrack of ``tracks`` to ``out`` (stereo WAV, 16-bit,
    ``sample_rate``) lasting exactly ``duration`` seconds, normalised to
    ``target_lufs`` with true peaks at most ``true_peak_db``."""
    if not (math.isfinite(target_lufs) and -70 < target_lufs < 0):
        raise ValueError(f"target_lufs must be between -70 and 0: {target_lufs}")
    if not (math.isfinite(true_peak_db) and -9 <= true_peak_db <= 0):
        raise ValueError(f"true_peak_db must be between -9 and 0: {true_peak_db}")
    found = _tracks(tracks, duration)
    lengths = [length for length, _ in found]
    graph = mix_filtergraph(
        tracks,
        duration=duration,
        lengths=lengths,
        sample_rate=sample_rate,
        out_label="premix",
    )
    inputs = [
        arg
        for t, (_, fmt) in zip(tracks, found, strict=True)
        for arg in input_args(t.file, fmt=fmt)
    ]
    out = Path(out)
    premix = out.with_name(f".{out.stem}.premix.wav")
    try:
        run_ffmpeg(
            [
                *inputs,
                "-filter_complex",
                f"{graph};[premix]anull[out]",
                "-map",
                "[out]",
                "-ac",
                "2",
                "-ar",
                str(sample_rate),
                "-c:a",
                "pcm_f32le",
                "-f",
                "wav",
            ],  # fmt: skip
            output=premix,
            total_seconds=duration,
        )
        # Loudness only: the premix's peaks do not matter, the limiter's do.
        frames, rate = decode_audio_native(premix)
        premix_lufs = integrated_loudness(KPower(frames, rate))
        del frames
        # Silence reads the gate (-70 LUFS): there is nothing to normalise.
        gain_db = target_lufs - premix_lufs if premix_lufs > SILENCE_LUFS else 0.0
        n_samples = int(round(duration * sample_rate))
        margin_db = LIMITER_MARGIN_DB
        report = None
        # Each pass is cheap (one gain and a limiter over a WAV). Limiting
        # loud transients lowers the loudness a little, so the gain is topped
        # up by what is missing; an inter-sample over that got past the
        # sample-peak limiter lowers its ceiling by the excess.
        for _ in range(MAX_RENDERS):
            limit = 10 ** ((true_peak_db - margin_db) / 20)
            chain = [
                f"volume={gain_db:.4f}dB",
                f"alimiter=limit={limit:.6f}:level=0:attack=5:release=50",
                f"apad=whole_len={n_samples}",
                f"atrim=end_sample={n_samples}",
            ]
            run_ffmpeg(
                [
                    *input_args(premix, fmt="wav"),
                    "-af",
                    ",".join(chain),
                    "-ac",
                    "2",
                    "-ar",
                    str(sample_rate),
                    "-c:a",
                    "pcm_s16le",
                    "-f",
                    "wav",
                ],  # fmt: skip
                output=out,
                total_seconds=duration,
            )
            report = measure(out)
            over = report.true_peak_db - true_peak_db
            short = target_lufs - report.integrated_lufs
            if over > 0:
                margin_db += over + 0.2
            elif (
                short > LOUDNESS_TOLERANCE_LU and report.integrated_lufs > SILENCE_LUFS
            ):
                gain_db += short
            else:
                break
    finally:
        premix.unlink(missing_ok=True)
    assert report is not None
    return report
