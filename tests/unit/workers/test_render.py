"""End-to-end tests of the renderer: a timeline in, a finished file out, and
every claim checked on the decoded file the way a viewer (or a platform) would
see it: frame counts, A/V sync, cuts on beats, VMAF, loudness, grades,
formats, metadata, progress, text, watermark, video sources, failures and
camera-move smoothness. Renders stay small (320x180 or 640x360, 30 fps, a few
seconds) except the 1080p VMAF check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.media_checks import detect_cuts, write_stereo_wav
from workers.assembly import render as render_module
from workers.assembly.audio_mix import true_peak_dbtp
from workers.assembly.ffmpeg import FFmpegError, ffmpeg_exe, run_ffmpeg
from workers.assembly.grading import identity_lut, write_cube
from workers.assembly.render import MANIFEST_KEY, render_timeline
from workers.assembly.timeline import Timeline, TimelineError, load_timeline
from workers.audio.decode import decode_audio_native
from workers.audio.loudness import KPower, integrated_loudness
from workers.audio.synth import SongSpec, synthesize_song, write_wav
from workers.probe import probe_media

W, H, FPS = 320, 180, 30
RATE = 48000


# --------------------------------------------------------------------------
# Helpers: media made here


def _png(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(path)
    return path


def _solid(path: Path, colour: tuple[int, int, int], size=(640, 360)) -> Path:
    img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    img[:] = colour
    return _png(path, img)


def _textured(path: Path, level: int, seed: int, size=(640, 360)) -> Path:
    """A smooth random texture around grey ``level`` (slow moves stay smooth)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(-25, 25, (size[1] // 40, size[0] // 40, 3))
    big = np.asarray(
        Image.fromarray((small + 128).astype(np.uint8)).resize(
            size, Image.Resampling.BICUBIC
        ),
        dtype=np.float64,
    )
    return _png(path, np.clip(big - 128 + level, 0, 255))


def _write_video(
    path: Path,
    lumas: list[int],
    size=(W, H),
    fps: int = FPS,
    *,
    container_format: str = "matroska",
    codec: str = "ffv1",
    options: dict[str, str] | None = None,
) -> Path:
    """A lossless grey video (FFV1/Matroska unless told otherwise): frame i
    is flat luma lumas[i]."""
    w, h = size
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for y in lumas:
            planes = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
            planes[:h] = y
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _timeline(clips: list[dict], output: dict | None = None, **extra) -> Timeline:
    out = {"width": W, "height": H, "fps": FPS, "quality": "standard"}
    out.update(output or {})
    return load_timeline({"version": 1, "output": out, "clips": clips, **extra})


def _still(file: Path | str, start: float, duration: float, **kw) -> dict:
    clip = {"source": {"kind": "still", "file": str(file)}, "start": start}
    return {**clip, "duration": duration, **kw}


def _video(file: Path | str, start: float, duration: float, **kw) -> dict:
    clip = {"source": {"kind": "video", "file": str(file)}, "start": start}
    return {**clip, "duration": duration, **kw}


def _lumas(path: Path) -> np.ndarray:
    """The Y plane of every decoded frame, (n, h, w) uint8, untouched."""
    with av.open(str(path)) as container:
        frames = []
        for f in container.decode(video=0):
            assert f.format.name == "yuv420p"
            frames.append(f.to_ndarray()[: f.height])
        return np.stack(frames)


def _rgb(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack(
            [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        ).astype(np.float32)


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _audio(path: Path) -> tuple[np.ndarray, float, int]:
    """Decoded audio (n, channels), the time of its first sample, its rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, start = [], None
        for f in container.decode(stream):
            if start is None:
                start = float(f.time or 0.0)
            a = f.to_ndarray()
            chunks.append(
                a.T if f.format.is_planar else a.reshape(-1, len(f.layout.channels))
            )
        return np.concatenate(chunks).astype(np.float64), start or 0.0, stream.rate


def _ls(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("render media")
    return {
        "dark": _textured(d / "dark.png", 40, 1),
        "bright": _textured(d / "bright.png", 210, 2),
        "mid": _textured(d / "mid.png", 120, 3),
        "black": _solid(d / "black.png", (0, 0, 0)),
        "grey": _solid(d / "grey.png", (128, 128, 128)),
        "dir": d,
    }


# --------------------------------------------------------------------------
# 1. Duration exact to one frame


@pytest.mark.parametrize("duration", [None, 1.9])
def test_frame_count_and_audio_length_are_exact(tmp_path, media, song_wav, duration):
    clips = [
        _still(
            media["dark"],
            0,
            1.25,
            move="zoom_in",
            transition={"type": "crossfade", "duration": 0.3},
        ),
        _still(media["bright"], 0.95, 1.6, move="pan_left"),
    ]
    output = {} if duration is None else {"duration": duration}
    timeline = _timeline(clips, output, audio=[{"file": str(song_wav)}])
    out = tmp_path / "out.mp4"
    report = render_timeline(timeline, out)
    seconds = 2.55 if duration is None else duration
    expected = round(seconds * FPS)
    assert report.frames == expected
    assert _frame_count(out) == expected
    audio, start, rate = _audio(out)
    audio_seconds = len(audio) / rate
    print(f"frames {expected}, audio {audio_seconds:.4f} s from {start:.4f} s")
    assert abs(start) <= 1 / FPS
    assert abs(audio_seconds - expected / FPS) <= 1 / FPS
    info = probe_media(out)
    assert abs(info.of_kind("video")[0].duration - expected / FPS) <= 1 / FPS


# --------------------------------------------------------------------------
# 2. A/V sync: flashes on clicks

CLICKS = [0.5, 1.0, 1.5, 2.0, 2.5]


def _click_track(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros_like(t)
    for c in CLICKS:
        i = int(round(c * RATE))
        n = int(0.02 * RATE)
        env = np.exp(-np.arange(n) / (0.004 * RATE))
        x[i : i + n] += 0.8 * env * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)
    return x


def _onsets(x: np.ndarray, rate: int, threshold: float) -> list[float]:
    """Times where |x| first rises above ``threshold`` after 0.2 s below it."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    onsets, last = [], -np.inf
    for i in loud:
        if i - last > 0.2 * rate:
            onsets.append(i / rate)
        last = i
    return onsets


def test_flash_frames_and_clicks_stay_in_sync(tmp_path, media):
    lumas = [16] * 90
    for c in CLICKS:
        lumas[round(c * FPS)] = 235
    flashes = _write_video(tmp_path / "flashes.mkv", lumas)
    clicks = write_stereo_wav(tmp_path / "clicks.wav", _click_track(3.5), RATE)
    clips = [
        _video(flashes, 0, 1.2),
        _video(flashes, 1.2, 1.8, **{"in": 1.2}),
    ]
    timeline = _timeline(clips, {"quality": 10}, audio=[{"file": str(clicks)}])
    out = tmp_path / "sync.mp4"
    render_timeline(timeline, out)

    with av.open(str(out)) as container:
        times = []
        for f in container.decode(video=0):
            y = f.to_ndarray()[: f.height]
            if y.mean() > 128:
                times.append(float(f.time))
    audio, start, rate = _audio(out)
    mono = audio.mean(axis=1)
    clicks_at = [start + t for t in _onsets(mono, rate, 0.3 * np.abs(mono).max())]
    print(f"flashes {times}\nclicks  {[round(t, 4) for t in clicks_at]}")
    assert len(times) == len(CLICKS)
    assert len(clicks_at) == len(CLICKS)
    offsets = [abs(a - v) for a, v in zip(clicks_at, times, strict=True)]
    print(f"max A/V offset {max(offsets) * 1000:.1f} ms")
    assert max(offsets) <= 1 / FPS


# --------------------------------------------------------------------------
# 3. Cuts land on beats


def test_hard_cuts_land_on_the_beats(tmp_path, media):
    song = synthesize_song(SongSpec(bpm=128, sections=(("verse", 2),)))
    wav = write_wav(tmp_path / "song.wav", song)
    beats = [b for b in song.beats if 0.3 < b < 3.2]
    chosen = beats[1::2][:3]  # every other beat
    bounds = [0.0, *(round(b * FPS) / FPS for b in chosen), 3.4]
    stills = [media["dark"], media["bright"], media["dark"], media["bright"]]
    clips = []
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        clip = _still(stills[k], a, b - a, move="zoom_in")
        if k < len(bounds) - 2:
            clip["transition"] = {"type": "cut", "duration": 0}
        clips.append(clip)
    timeline = _timeline(clips, audio=[{"file": str(wav)}])
    out = tmp_path / "beats.mp4"
    report = render_timeline(timeline, out)
    cuts = [c / FPS for c in detect_cuts(out)]
    print(f"beats {[round(b, 4) for b in chosen]}\ncuts  {[round(c, 4) for c in cuts]}")
    assert len(cuts) == len(chosen)
    offsets = [abs(c - b) for c, b in zip(cuts, chosen, strict=True)]
    print(f"max cut offset {max(offsets) * 1000:.2f} ms")
    assert max(offsets) <= 0.5 / FPS
    assert all(abs(j - c) <= 0.5 / FPS for j, c in zip(report.joins, cuts, strict=True))


# --------------------------------------------------------------------------
# 4. VMAF of the delivery encode against a lossless master


def _vmaf(distorted: Path, reference: Path, log: Path) -> float:
    graph = (
        "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS[r];"
        f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads=2"
    )
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
        "-i", str(distorted), "-i", str(reference),
        "-lavfi", graph, "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(log.read_text())
    return float(data["pooled_metrics"]["vmaf"]["mean"])


def _vmaf_timeline(images: list[Path], quality: int | str) -> Timeline:
    clips = [
        _still(
            images[0],
            0,
            1.4,
            move="zoom_in",
            transition={"type": "crossfade", "duration": 0.4},
        ),
        _still(images[1], 1.0, 1.4, move="pan_right"),
    ]
    out = {"preset": "youtube", "quality": quality}
    return load_timeline({"version": 1, "output": out, "clips": clips})


def test_standard_quality_scores_vmaf_93_against_a_lossless_master(tmp_path, images):
    standard, master = tmp_path / "standard.mp4", tmp_path / "master.mp4"
    render_timeline(_vmaf_timeline(images, "standard"), standard)
    render_timeline(_vmaf_timeline(images, 0), master)
    assert _frame_count(master) == _frame_count(standard) == 72
    score = _vmaf(standard, master, tmp_path / "vmaf.json")
    print(f"VMAF (standard vs lossless master, 1080p): {score:.2f}")
    assert score >= 93


# --------------------------------------------------------------------------
# 5. Loudness targets


def _voice_bursts(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1320 * t)
    gate = ((t % 1.0) > 0.3) & ((t % 1.0) < 0.8)
    return 0.2 * tone * gate


@pytest.mark.parametrize("target", [-14.0, -23.0])
def test_soundtrack_meets_loudness_and_true_peak_targets(
    tmp_path, song_wav, media, target
):
    voice = write_stereo_wav(tmp_path / "voice.wav", _voice_bursts(4.0), RATE)
    timeline = _timeline(
        [_still(media["mid"], 0, 4.0)],
        {"quality": "draft", "loudness": target, "true_peak": -1.5},
        audio=[
            {"file": str(song_wav), "role": "music"},
            {"file": str(voice), "role": "voice", "start": 0.5},
        ],
    )
    out = tmp_path / "loud.mp4"
    report = render_timeline(timeline, out)
    frames, rate = decode_audio_native(out)
    lufs = integrated_loudness(KPower(np.asarray(frames), rate))
    peak = true_peak_dbtp(np.asarray(frames))
    print(
        f"target {target} LUFS: output {lufs:.2f} LUFS, true peak {peak:.2f} dBTP; "
        f"report {report.loudness_lufs:.2f} LUFS, {report.true_peak_db:.2f} dBTP"
    )
    assert abs(lufs - target) <= 1.0
    assert peak <= -1.5 + 0.3
    assert report.loudness_lufs is not None and report.true_peak_db is not None
    assert abs(report.loudness_lufs - target) <= 0.5
    assert report.true_peak_db <= -1.5
    assert abs(report.loudness_lufs - lufs) <= 1.0


# --------------------------------------------------------------------------
# 6. Grades


@pytest.fixture(scope="module")
def graded(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("grades")
    cache: dict[str, np.ndarray] = {}

    def get(grade: dict | None) -> np.ndarray:
        key = json.dumps(grade, sort_keys=True)
        if key not in cache:
            extra = {"grade": grade} if grade else {}
            timeline = _timeline([_still(images[0], 0, 0.4)], {"quality": 12}, **extra)
            out = folder / f"{len(cache)}.mp4"
            render_timeline(timeline, out)
            cache[key] = _rgb(out)
        return cache[key]

    return get


def _r_minus_b(x: np.ndarray) -> float:
    return float((x[..., 0] - x[..., 2]).mean())


def _chroma(x: np.ndarray) -> float:
    return float((x.max(axis=-1) - x.min(axis=-1)).mean())


def _luma_std(x: np.ndarray) -> float:
    return float((x @ np.array([0.2126, 0.7152, 0.0722])).std())


GRADE_CHECKS = {
    # name: (measure, +1 if the grade raises it / -1 if it lowers it, margin)
    "warm": (_r_minus_b, +1, 8.0),
    "cool": (_r_minus_b, -1, 8.0),
    "noir": (_chroma, -1, 20.0),
    "pastel": (_chroma, -1, 15.0),
    "high_contrast": (_luma_std, +1, 5.0),
    "faded": (_luma_std, -1, 3.0),
    "neon": (_chroma, +1, 10.0),
}


@pytest.mark.parametrize("name", sorted(GRADE_CHECKS))
def test_each_grade_moves_the_colours_its_way(graded, name):
    measure, sign, margin = GRADE_CHECKS[name]
    before = measure(graded(None))
    after = measure(graded({"preset": name}))
    print(f"{name}: {measure.__name__} {before:.2f} -> {after:.2f}")
    assert sign * (after - before) >= margin


def test_noir_leaves_no_colour(graded):
    assert _chroma(graded({"preset": "noir"})) < 6.0


def test_a_cube_file_is_applied(tmp_path, graded):
    lut = identity_lut(17)[..., ::-1].copy()  # swap red and blue
    cube = write_cube(lut, tmp_path / "swap.cube")
    plain = graded(None).mean(axis=(0, 1, 2))
    swapped = graded({"cube": str(cube)}).mean(axis=(0, 1, 2))
    print(f"means RGB plain {plain.round(1)} -> cube {swapped.round(1)}")
    assert abs(plain[0] - plain[2]) > 10  # the picture tells red from blue
    assert abs(swapped[0] - plain[2]) < 3
    assert abs(swapped[2] - plain[0]) < 3
    assert abs(swapped[1] - plain[1]) < 3


# --------------------------------------------------------------------------
# 7. Formats


def test_webm_is_vp9_and_opus(tmp_path, media, song_wav):
    timeline = _timeline(
        [_still(media["dark"], 0, 1.0, move="zoom_in")],
        {"format": "webm"},
        audio=[{"file": str(song_wav)}],
    )
    out = tmp_path / "out.webm"
    render_timeline(timeline, out)
    info = probe_media(out)
    assert "webm" in info.format_name or "matroska" in info.format_name
    (video,), (audio,) = info.of_kind("video"), info.of_kind("audio")
    assert (video.codec, video.width, video.height) == ("vp9", W, H)
    assert audio.codec == "opus" and audio.sample_rate == RATE
    assert _frame_count(out) == 30


def test_gif_is_small_slow_and_paletted(tmp_path, images):
    timeline = _timeline(
        [_still(images[0], 0, 2.0, move="pan_left")],
        {"format": "gif", "width": 640, "height": 360},
    )
    out = tmp_path / "out.gif"
    render_timeline(timeline, out)
    assert out.read_bytes()[:6] in (b"GIF89a", b"GIF87a")
    info = probe_media(out)
    (video,) = info.of_kind("video")
    assert video.codec == "gif"
    assert video.width <= 480 and video.width == 480 and video.height == 270
    # GIF delays are whole centiseconds (7, 7, 6, ...): judge the mean rate.
    assert video.frames is not None and video.duration
    assert video.frames / video.duration <= 15.01
    frames = _rgb(out)
    assert 28 <= len(frames) <= 31  # 2 s at 15 fps
    colours = np.unique(frames.reshape(-1, 3), axis=0)
    assert 16 < len(colours) <= 256


def _top_level_boxes(data: bytes) -> list[str]:
    boxes, i = [], 0
    while i + 8 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        elif size == 0:
            size = len(data) - i
        boxes.append(kind)
        assert size >= 8
        i += size
    return boxes


def test_mp4_has_moov_before_mdat(tmp_path, media, song_wav):
    timeline = _timeline(
        [_still(media["dark"], 0, 1.0)], audio=[{"file": str(song_wav)}]
    )
    out = tmp_path / "out.mp4"
    render_timeline(timeline, out)
    boxes = _top_level_boxes(out.read_bytes())
    print(boxes)
    assert boxes[0] == "ftyp"
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat")
    info = probe_media(out)
    assert [s.codec for s in info.streams] == ["h264", "aac"]


# --------------------------------------------------------------------------
# 8. Manifest


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_manifest_is_embedded_as_json(tmp_path, media, fmt):
    block = {"job": "42", "prompt": "neon city — été", "nested": {"n": [1, 2.5]}}
    timeline = _timeline(
        [_still(media["dark"], 0, 0.5)], {"format": fmt}, manifest=block
    )
    out = tmp_path / f"out.{fmt}"
    render_timeline(timeline, out, manifest={"render_id": "r-7", "job": "43"})
    with av.open(str(out)) as container:
        tags = {k.lower(): v for k, v in container.metadata.items()}
    assert MANIFEST_KEY in tags, tags
    data = json.loads(tags[MANIFEST_KEY])
    assert data["prompt"] == block["prompt"]
    assert data["nested"] == block["nested"]
    assert data["render_id"] == "r-7"
    assert data["job"] == "43"  # the argument wins over the block


# --------------------------------------------------------------------------
# 9. Progress


def test_progress_counts_up_to_the_total(tmp_path, media):
    calls: list[tuple[int, int]] = []
    timeline = _timeline(
        [
            _still(
                media["dark"],
                0,
                1.0,
                transition={"type": "dip_to_black", "duration": 0.3},
            ),
            _still(media["bright"], 0.7, 1.0),
        ]
    )
    report = render_timeline(
        timeline, tmp_path / "out.mp4", on_progress=lambda d, t: calls.append((d, t))
    )
    assert len(calls) >= 2
    assert calls[-1] == (report.frames, report.frames) == (51, 51)
    assert all(t == report.frames for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert all(0 <= d <= report.frames for d in done)


# --------------------------------------------------------------------------
# 10. Text and watermark


def _bright(y: np.ndarray, rows: slice) -> np.ndarray:
    """Per frame: how many pixels in ``rows`` are near white."""
    return (y[:, rows, :] > 180).sum(axis=(1, 2))


def test_subtitles_title_and_karaoke_are_burned_where_and_when_expected(
    tmp_path, media
):
    srt = tmp_path / "lyrics.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHELLO WORLD\n", encoding="utf-8")
    timeline = _timeline(
        [_still(media["black"], 0, 3.0)],
        {"quality": 12},
        text=[
            {"kind": "subtitles", "file": str(srt)},
            {
                "kind": "title",
                "text": "TITLE",
                "start": 0.0,
                "end": 0.8,
                "position": "top",
            },
            {
                "kind": "karaoke",
                "words": [
                    {"word": "LA", "start": 2.2, "end": 2.5},
                    {"word": "LA", "start": 2.5, "end": 2.8},
                ],
            },
        ],
    )
    out = tmp_path / "text.mp4"
    render_timeline(timeline, out)
    y = _lumas(out)
    assert len(y) == 90
    top, middle, bottom = (
        slice(0, H // 3),
        slice(H // 3, 2 * H // 3),
        slice(2 * H // 3, H),
    )
    t_top, t_mid, t_bot = _bright(y, top), _bright(y, middle), _bright(y, bottom)
    print("top", t_top.tolist(), "\nbottom", t_bot.tolist())
    assert t_mid.max() == 0  # nothing is drawn in the middle
    # Title: top band during 0-0.8 s only (fading in and out over 0.2 s).
    assert (t_top[7:17] > 10).all()
    assert t_top[27:].max() == 0
    # Subtitle cue 1-2 s and karaoke 2.2-2.8 s: bottom band, only then.
    assert t_bot[:28].max() == 0
    assert (t_bot[31:59] > 10).all()
    assert t_bot[61:65].max() == 0
    assert (t_bot[67:83] > 10).all()
    assert t_bot[87:].max() == 0


def test_watermark_marks_its_corner_only(tmp_path, images):
    logo = np.zeros((60, 120, 3), dtype=np.uint8)
    logo[:] = (255, 255, 255)
    logo[20:40, 20:100] = (255, 0, 0)
    logo_path = _png(tmp_path / "logo.png", logo)
    clips = [_still(images[0], 0, 0.5)]
    plain, marked = tmp_path / "plain.mp4", tmp_path / "marked.mp4"
    render_timeline(_timeline(clips, {"quality": 12}), plain)
    wm = {
        "file": str(logo_path),
        "position": "bottom_right",
        "opacity": 1.0,
        "width": 0.2,
    }
    render_timeline(_timeline(clips, {"quality": 12}, watermark=wm), marked)
    a, b = _rgb(plain), _rgb(marked)
    ch, cw = H // 4, W // 4
    corners = {
        "top_left": (slice(0, ch), slice(0, cw)),
        "top_right": (slice(0, ch), slice(W - cw, W)),
        "bottom_left": (slice(H - ch, H), slice(0, cw)),
        "bottom_right": (slice(H - ch, H), slice(W - cw, W)),
    }
    diff = {
        k: float(np.abs(a[:, r, c] - b[:, r, c]).mean())
        for k, (r, c) in corners.items()
    }
    print({k: round(v, 2) for k, v in diff.items()})
    assert diff["bottom_right"] > 20
    assert diff["top_left"] < 2
    # On every frame, not only some.
    rows, cols = corners["bottom_right"]
    per_frame = np.abs(a[:, rows, cols] - b[:, rows, cols]).mean(axis=(1, 2, 3))
    assert (per_frame > 20).all()


# --------------------------------------------------------------------------
# 11. Video clip sources


def _index_of(y: np.ndarray) -> np.ndarray:
    """Source frame index encoded as flat luma 16 + 3 i."""
    return np.round((y.reshape(len(y), -1).mean(axis=1) - 16) / 3).astype(int)


def _index_video(path: Path, count: int) -> Path:
    """Lossless H.264 in MP4: frame i is flat luma 16 + 3 i."""
    return _write_video(
        path,
        [16 + 3 * i for i in range(count)],
        container_format="mp4",
        codec="libx264",
        options={"crf": "0", "preset": "ultrafast", "bf": "0"},
    )


def test_video_in_point_speed_and_held_last_frame(tmp_path):
    long = _index_video(tmp_path / "long.mp4", 70)
    short = _index_video(tmp_path / "short.mp4", 10)
    clips = [
        _video(long, 0, 0.6, **{"in": 1.0, "speed": 2.0}),  # source 30, 32, ..
        _video(long, 0.6, 0.5, **{"in": 0.5, "speed": 0.5}),  # 15, 15, 16, 16, ..
        _video(short, 1.1, 0.9),  # 0..9, then frame 9 held
    ]
    timeline = _timeline(clips, {"quality": 8})
    out = tmp_path / "video.mp4"
    render_timeline(timeline, out)
    got = _index_of(_lumas(out))
    expected = (
        [30 + 2 * j for j in range(18)]
        + [15 + j // 2 for j in range(15)]
        + [min(j, 9) for j in range(27)]
    )
    print(got.tolist())
    assert got.tolist() == expected


def test_speed_is_even_for_sources_with_millisecond_timestamps(tmp_path):
    # Matroska/WebM store times in whole milliseconds (33, 67, 100 ms...).
    # At speed 2 every output frame should still be every other source frame.
    source = _write_video(tmp_path / "clip.mkv", [16 + 3 * i for i in range(70)])
    timeline = _timeline([_video(source, 0, 0.6, **{"in": 1.0, "speed": 2.0})])
    out = tmp_path / "fast.mp4"
    render_timeline(timeline, out)
    got = _index_of(_lumas(out))
    print(got.tolist())
    assert got.tolist() == [30 + 2 * j for j in range(18)]


# --------------------------------------------------------------------------
# 12. Bad input


def test_missing_file_names_the_field_and_writes_nothing(tmp_path, media):
    outdir = tmp_path / "out"
    outdir.mkdir()
    timeline = _timeline(
        [_still(media["dark"], 0, 1.0), _still(tmp_path / "nope.png", 1.0, 1.0)]
    )
    with pytest.raises(TimelineError) as info:
        render_timeline(timeline, outdir / "out.mp4")
    assert [field for field, _ in info.value.errors] == ["clips[1].source.file"]
    assert "clips[1].source.file" in str(info.value)
    assert _ls(outdir) == []


@pytest.mark.parametrize("position", [0, 1])
def test_corrupt_image_names_the_file_and_leaves_nothing(tmp_path, media, position):
    bad = tmp_path / "broken-picture.png"
    bad.write_bytes(b"this is not an image at all\n" * 10)
    files = [media["dark"], media["bright"]]
    files[position] = bad
    outdir = tmp_path / "out"
    outdir.mkdir()
    timeline = _timeline([_still(files[0], 0, 1.0), _still(files[1], 1.0, 1.0)])
    with pytest.raises(ValueError, match="broken-picture.png"):
        render_timeline(timeline, outdir / "out.mp4")
    assert _ls(outdir) == []


def test_encoder_dying_mid_render_leaves_nothing(tmp_path, media, monkeypatch):
    written = {"n": 0}
    original = render_module._Encoder.write

    def write(self, frame):
        written["n"] += 1
        if written["n"] == 20:
            os.kill(self.process.proc.pid, signal.SIGKILL)
            self.process.proc.wait()
        original(self, frame)

    monkeypatch.setattr(render_module._Encoder, "write", write)
    outdir = tmp_path / "out"
    outdir.mkdir()
    timeline = _timeline([_still(media["dark"], 0, 2.0)])
    with pytest.raises(FFmpegError):
        render_timeline(timeline, outdir / "out.mp4")
    assert written["n"] == 20
    assert _ls(outdir) == []


def test_transition_ffmpeg_failing_mid_render_leaves_nothing(
    tmp_path, media, monkeypatch
):
    def broken(*args, **kwargs):
        return "[0:v][1:v]no_such_filter_anywhere[j]"

    monkeypatch.setattr(render_module, "join_filter", broken)
    outdir = tmp_path / "out"
    outdir.mkdir()
    timeline = _timeline(
        [
            _still(
                media["dark"], 0, 1.0, transition={"type": "dissolve", "duration": 0.3}
            ),
            _still(media["bright"], 0.7, 1.0),
        ]
    )
    with pytest.raises(FFmpegError, match="dissolve"):
        render_timeline(timeline, outdir / "out.mp4")
    assert _ls(outdir) == []


# --------------------------------------------------------------------------
# 13. Smooth camera moves


def test_slow_pan_moves_by_even_subpixel_steps(tmp_path):
    iw, ih = 1280, 720
    yy, xx = np.mgrid[0:ih, 0:iw]
    blob = 235 * np.exp(-((xx - iw / 2) ** 2 + (yy - ih / 2) ** 2) / (2 * 30.0**2))
    image = _png(tmp_path / "blob.png", np.repeat(blob[..., None], 3, axis=-1))
    move = {
        "from": {"x": 0.48, "y": 0.5, "zoom": 1.25},
        "to": {"x": 0.52, "y": 0.5, "zoom": 1.25},
    }
    timeline = _timeline(
        [_still(image, 0, 2.0, move=move)],
        {"width": 640, "height": 360, "quality": 10},
    )
    out = tmp_path / "pan.mp4"
    render_timeline(timeline, out)
    y = _lumas(out).astype(np.float64)
    w = np.clip(y - 20, 0, None)  # black is 16; leave codec noise out
    total = w.sum(axis=(1, 2))
    cx = (w.sum(axis=1) * np.arange(w.shape[2])).sum(axis=1) / total
    cy = (w.sum(axis=2) * np.arange(w.shape[1])).sum(axis=1) / total
    steps = np.diff(cx)
    # The view travels 0.04 of a 1280 px image; at zoom 1.25 an image pixel is
    # 640 / (1280 / 1.25) = 0.625 output px: 32 px over 59 steps, leftwards.
    expected = -0.04 * iw * 0.625 / 59
    print(f"centroid steps: mean {steps.mean():.4f} px, spread {steps.std():.4f} px")
    assert len(y) == 60
    assert abs(steps.mean() - expected) < 0.02
    # 8-bit rounding of a smooth blob alone moves its centroid by up to ~0.15 px
    # (a float warp rounded to uint8 shows the same), so a step may be off by
    # 0.25 px; whole-pixel stepping (0 or 1 px a frame) is off by ~0.5 px.
    assert np.abs(steps - expected).max() < 0.25
    assert np.ptp(cy) < 0.1


def test_a_stopped_render_ends_at_its_next_frame_and_leaves_nothing(
    tmp_path, media, monkeypatch
):
    import threading

    from workers.assembly.render import RenderStopped

    stop = threading.Event()
    written = {"n": 0}
    real_write = render_module._Encoder.write

    def write(self, frame):
        written["n"] += 1
        if written["n"] == 10:
            stop.set()  # as another thread would, mid-render
        real_write(self, frame)

    monkeypatch.setattr(render_module._Encoder, "write", write)
    outdir = tmp_path / "out"
    outdir.mkdir()
    timeline = _timeline([_still(media["dark"], 0, 4.0, move="zoom_in")])
    with pytest.raises(RenderStopped):
        render_timeline(timeline, outdir / "out.mp4", stop=stop)
    assert written["n"] == 10  # not one frame more
    assert _ls(outdir) == []


def test_a_dark_video_still_renders_with_a_thumbnail(tmp_path, media):
    timeline = _timeline([_still(media["dark"], 0, 1.0)])
    out, thumb = tmp_path / "dark.mp4", tmp_path / "dark.jpg"
    report = render_timeline(timeline, out, thumbnail=thumb)
    assert out.exists() and thumb.stat().st_size > 0
    assert report.thumbnail_time is not None


def test_a_video_in_point_past_its_end_is_a_clear_error(tmp_path, media):
    short = tmp_path / "short.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", f"color=c=gray:s={W}x{H}:r={FPS}:d=1",
         "-c:v", "libx264", "-pix_fmt", "yuv420p"],
        output=short,
    )  # fmt: skip
    timeline = _timeline([_video(short, 0, 1.0, **{"in": 5.0})])
    with pytest.raises(ValueError, match="past its end"):
        render_timeline(timeline, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
