"""Turn a still image into a short clip with a slow camera move (Ken Burns).

The move is done with ffmpeg's ``perspective`` filter evaluated per frame: it
samples the image at sub-pixel positions, so zooms and pans glide instead of
stepping a whole pixel at a time the way ``zoompan``/``crop`` do, and it costs
less than running ``zoompan`` on a 4x upscaled canvas for the same smoothness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from workers.assembly.ffmpeg import input_args, run_ffmpeg

MOVES = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down")

ZOOM = 1.10  # how far zoom_in/zoom_out travel
MIN_PAN = 0.10  # a pan travels at least this fraction of the frame...
MAX_PAN = 0.20  # ...and at most this, so panoramas do not whip past

# Every clip is encoded with exactly these settings, so clips of one size can be
# joined by the concat demuxer with stream copy (same SPS/PPS, IDR at frame 0).
# No B-frames: decode order then equals display order, so a stream-copied join
# can be cut after any frame, not only where a GOP ends.
X264_ARGS = [
    "-c:v", "libx264",
    "-preset", "veryfast",
    "-crf", "18",
    "-profile:v", "high",
    "-bf", "0",
    "-pix_fmt", "yuv420p",
    "-sc_threshold", "0",
    "-colorspace", "bt709",
    "-color_primaries", "bt709",
    "-color_trc", "bt709",
    "-color_range", "tv",
]  # fmt: skip

# EXIF orientation -> filters that make the pixels upright. ffmpeg's own
# autorotation is turned off so the result never depends on its version.
ORIENT_FILTERS = {
    2: ["hflip"],
    3: ["hflip", "vflip"],
    4: ["vflip"],
    5: ["transpose=cclock_flip"],
    6: ["transpose=clock"],
    7: ["transpose=clock_flip"],
    8: ["transpose=cclock"],
}
# Decoder to use for each Pillow format: uploads are stored under content hashes
# without a telling extension, so the image2 demuxer cannot guess the codec.
DECODERS = {
    "JPEG": "mjpeg",
    "PNG": "png",
    "WEBP": "webp",
    "BMP": "bmp",
    "TIFF": "tiff",
    "GIF": "gif",
}


@dataclass(frozen=True)
class StillInfo:
    width: int  # upright size, after EXIF orientation
    height: int
    decoder: str | None
    orient: list[str]


def inspect_image(image: Path) -> StillInfo:
    try:
        with Image.open(image) as img:
            width, height = img.size
            orientation = int(img.getexif().get(0x0112, 1) or 1)
            fmt = img.format or ""
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(f"{image.name}: not an image that can be read") from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    orient = ORIENT_FILTERS.get(orientation, [])
    return StillInfo(width, height, DECODERS.get(fmt), orient)


def _lerp(a: float, b: float, p: str) -> str:
    return f"({a:.6f}+({b - a:.6f})*{p})"


def _move_filters(
    src: StillInfo,
    width: int,
    height: int,
    frames: int,
    move: str,
    focus: tuple[float, float] = (0.5, 0.5),
) -> list[str]:
    """Filters from the upright image to ``frames`` moving frames of width x height."""
    # Progress 0..1 over the clip; perspective counts output frames ("on")
    # from 1.
    p = f"((on-1)/{frames - 1})" if frames > 1 else "0"
    cover = max(width / src.width, height / src.height)
    if move in ("zoom_in", "zoom_out"):
        canvas_w, canvas_h = width, height
        z0, z1 = (1.0, ZOOM) if move == "zoom_in" else (ZOOM, 1.0)
        # Margin each side of the visible window, as a fraction of the canvas.
        m = f"((1-1/{_lerp(z0, z1, p)})/2)"
        corners = {
            "x0": f"W*{m}",
            "y0": f"H*{m}",
            "x1": f"W-W*{m}",
            "y1": f"H*{m}",
            "x2": f"W*{m}",
            "y2": f"H-H*{m}",
            "x3": f"W-W*{m}",
            "y3": f"H-H*{m}",
        }
    else:
        horizontal = move in ("pan_left", "pan_right")
        frame_len = width if horizontal else height
        spare = (src.width if horizontal else src.height) * cover - frame_len
        if spare < MIN_PAN * frame_len:
            # Not enough image beyond the frame: zoom in just enough to pan.
            cover *= (1 + MIN_PAN) * frame_len / (frame_len + spare)
            spare = (src.width if horizontal else src.height) * cover - frame_len
        travel = round(min(spare, MAX_PAN * frame_len))
        canvas_w = width + travel if horizontal else width
        canvas_h = height if horizontal else height + travel
        # pan_right/pan_down move the camera towards +x/+y.
        start, end = (0, travel) if move in ("pan_right", "pan_down") else (travel, 0)
        d = _lerp(start, end, p)
        dx, dy = (d, "0") if horizontal else ("0", d)
        corners = {
            "x0": f"{dx}",
            "y0": f"{dy}",
            "x1": f"W+{dx}",
            "y1": f"{dy}",
            "x2": f"{dx}",
            "y2": f"H+{dy}",
            "x3": f"W+{dx}",
            "y3": f"H+{dy}",
        }
    scaled_w = max(canvas_w, round(src.width * cover))
    scaled_h = max(canvas_h, round(src.height * cover))
    persp = ":".join(f"{k}='{v}'" for k, v in corners.items())
    # The crop keeps the focus point (fractions of the image) where it can.
    fx, fy = (min(max(f, 0.0), 1.0) for f in focus)
    crop_x = round((scaled_w - canvas_w) * fx)
    crop_y = round((scaled_h - canvas_h) * fy)
    return [
        *src.orient,
        # Fit to cover the canvas and crop around the focus: never stretched.
        f"scale={scaled_w}:{scaled_h}:flags=lanczos"
        ":out_color_matrix=bt709:out_range=tv",
        f"crop={canvas_w}:{canvas_h}:{crop_x}:{crop_y}",
        "setsar=1",
        "format=yuv420p",
        # Scale once, then repeat that frame instead of decoding it N times.
        f"loop=loop={frames - 1}:size=1:start=0",
        f"perspective={persp}:interpolation=linear:eval=frame",
        f"crop={width}:{height}:0:0",
    ]


def render_still_clip(
    image: Path,
    out: Path,
    *,
    width: int,
    height: int,
    fps: int,
    frames: int,
    move: str,
    focus: tuple[float, float] = (0.5, 0.5),
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Render ``frames`` frames at ``fps`` of ``image`` with a slow ``move``.

    The image covers the frame (scaled and cropped, never stretched); the crop
    keeps ``focus`` (x, y as fractions of the image; the centre by default)
    as close to its place as the spare image allows.
    zoom_in/zoom_out change the scale by 10%; pans travel 10-20% of the frame
    over the image area beyond it, zooming in slightly when there is none.
    Output is H.264 with no audio, one GOP opening on an IDR frame, encoded the
    same way for every clip so clips concatenate with stream copy.
    """
    image, out = Path(image), Path(out)
    if move not in MOVES:
        raise ValueError(f"Unknown move {move!r}; choose one of: {', '.join(MOVES)}.")
    if frames < 1 or fps < 1:
        raise ValueError("A clip needs at least one frame and a positive frame rate.")
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise ValueError("Clip width and height must be even numbers (yuv420p).")
    if not image.is_file():
        raise ValueError(f"{image.name}: no such image")
    src = inspect_image(image)
    chain = _move_filters(src, width, height, frames, move, focus)
    chain += [f"settb=1/{fps}", "setpts=N"]
    options = ["-noautorotate", "-framerate", str(fps)]
    if src.decoder:
        options += ["-c:v", src.decoder]
    args = [
        *input_args(image, fmt="image2", options=options),
        "-filter_complex",
        f"[0:v]{','.join(chain)}[v]",
        "-map",
        "[v]",
        "-frames:v",
        str(frames),
        "-r",
        str(fps),
        *X264_ARGS,
        "-g",
        str(frames),
        "-keyint_min",
        str(frames),
        "-an",
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
    ]
    run_ffmpeg(args, output=out, total_seconds=frames / fps, on_progress=on_progress)
