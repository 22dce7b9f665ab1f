"""Encoder settings for each delivery format and quality.

One place decides how a render is compressed, so the renderer, its tests and
the benchmark's raw-encoding floor all use exactly the same settings.

* mp4: H.264 High, yuv420p, BT.709 tags, a keyframe every 2 s (closed GOPs, as
  YouTube asks), ``+faststart`` so playback starts before the whole file
  arrives; AAC 192 kb/s at 48 kHz.
* webm: VP9 (constant quality, row multithreading), Opus 160 kb/s.
* gif: no audio; at most 15 fps and 480 px wide, one palette for the whole
  video (two passes, see ``render``).

Quality names map to x264 presets and CRFs; a number is a CRF with the
standard preset. "standard" (veryfast, CRF 18) is visually transparent for
photo montages and keeps renders faster than real time on a small machine.
"""

from __future__ import annotations

AUDIO_RATE = 48000
GIF_FPS = 15
GIF_MAX_WIDTH = 480

# quality -> (x264 preset, CRF); VP9 takes the CRF + 13 (its scale differs).
X264_QUALITY = {
    "draft": ("ultrafast", 23),
    "standard": ("veryfast", 18),
    "high": ("medium", 16),
}
VP9_CRF_OFFSET = 13
COLOUR_TAGS = [
    "-colorspace", "bt709",
    "-color_primaries", "bt709",
    "-color_trc", "bt709",
    "-color_range", "tv",
]  # fmt: skip


def _preset_and_crf(quality: int | str) -> tuple[str, int]:
    if isinstance(quality, str):
        try:
            return X264_QUALITY[quality]
        except KeyError:
            raise ValueError(
                f"Unknown quality {quality!r}; choose one of: "
                f"{', '.join(X264_QUALITY)} or a CRF 0..51."
            ) from None
    if isinstance(quality, bool) or not 0 <= quality <= 51:
        raise ValueError(f"A CRF must be 0..51, got {quality!r}.")
    return X264_QUALITY["standard"][0], int(quality)


def video_args(fmt: str, quality: int | str, fps: int) -> list[str]:
    """ffmpeg output arguments for the video stream of ``fmt`` at ``quality``."""
    preset, crf = _preset_and_crf(quality)
    gop = str(2 * fps)
    if fmt == "mp4":
        return [
            "-c:v", "libx264",
            "-preset", preset,
            "-crf", str(crf),
            # CRF 0 is lossless, which High profile cannot carry; x264 then
            # picks High 4:4:4 Predictive itself.
            *(["-profile:v", "high"] if crf > 0 else []),
            "-pix_fmt", "yuv420p",
            "-g", gop, "-keyint_min", str(fps), "-flags", "+cgop",
            *COLOUR_TAGS,
        ]  # fmt: skip
    if fmt == "webm":
        return [
            "-c:v", "libvpx-vp9",
            "-pix_fmt", "yuv420p",
            "-crf", str(min(63, crf + VP9_CRF_OFFSET)), "-b:v", "0",
            "-deadline", "realtime" if preset != "medium" else "good",
            "-cpu-used", "8" if preset != "medium" else "4",
            "-row-mt", "1", "-tile-columns", "2",
            "-g", gop,
            *COLOUR_TAGS,
        ]  # fmt: skip
    if fmt == "gif":
        return ["-c:v", "gif"]
    raise ValueError(f"Unknown format {fmt!r}; choose one of: mp4, webm, gif.")


def audio_args(fmt: str) -> list[str]:
    """ffmpeg output arguments for the soundtrack of ``fmt`` (none for gif)."""
    if fmt == "mp4":
        return ["-c:a", "aac", "-b:a", "192k", "-ar", str(AUDIO_RATE), "-ac", "2"]
    if fmt == "webm":
        return ["-c:a", "libopus", "-b:a", "160k", "-ar", str(AUDIO_RATE), "-ac", "2"]
    if fmt == "gif":
        return ["-an"]
    raise ValueError(f"Unknown format {fmt!r}; choose one of: mp4, webm, gif.")


def container_args(fmt: str) -> list[str]:
    """Muxer arguments: the container, and where its index goes."""
    if fmt == "mp4":
        # use_metadata_tags keeps keys mp4 has no atom for (the manifest).
        return ["-movflags", "+faststart+use_metadata_tags", "-f", "mp4"]
    if fmt == "webm":
        return ["-f", "webm"]
    if fmt == "gif":
        return ["-loop", "0", "-f", "gif"]
    raise ValueError(f"Unknown format {fmt!r}; choose one of: mp4, webm, gif.")
