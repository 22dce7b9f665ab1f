from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from workers.assembly.blends import BLENDS
from workers.assembly.encode import video_args
from workers.assembly.ffmpeg import run_ffmpeg
from workers.assembly.transitions import (
    TRANSITIONS,
    get_transition,
    join_filter,
    render_join,
)
from workers.probe import probe_media

W, H, FPS = 160, 90, 24
CLIP = FPS  # frames in each one-second clip
DUR = 0.5
OVERLAP = int(DUR * FPS)  # 12 frames

# Where b shows first during a directional transition.
B_ENTERS_FROM = {
    "wipe_left": "right",
    "wipe_right": "left",
    "wipe_up": "bottom",
    "wipe_down": "top",
    "smooth_left": "right",
    "smooth_right": "left",
    "slide_left": "right",
    "slide_right": "left",
    "slide_up": "bottom",
    "slide_down": "top",
    "push_left": "right",
    "push_right": "left",
    "push_up": "bottom",
    "push_down": "top",
    "whip_pan": "right",
    "whip_pan_right": "left",
}


ENCODE = [*video_args("mp4", "standard", FPS), "-f", "mp4"]


def _make_clip(path: Path, colour: str) -> Path:
    # A grid on a flat colour: flat enough to tell the clips apart anywhere,
    # textured enough that a zoom or a shift shows.
    source = f"color=c={colour}:s={W}x{H}:r={FPS}:d=1"
    grid = "drawgrid=w=20:h=16:t=2:c=white"
    run_ffmpeg(["-f", "lavfi", "-i", source, "-vf", grid, *ENCODE], output=path)
    return path


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack(
            [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        ).astype(np.float32)


def _diff(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(x - y).mean())


def _changed(x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of pixels that visibly differ (codec noise left out)."""
    return float((np.abs(x - y).max(axis=-1) > 24).mean())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("transition clips")
    return _make_clip(folder / "a.mp4", "red"), _make_clip(folder / "b.mp4", "blue")


@pytest.fixture(scope="module")
def joined(tmp_path_factory, clips):
    folder = tmp_path_factory.mktemp("joins")
    a, b = clips
    ref_a, ref_b = _frames(a)[0], _frames(b)[0]
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if name not in cache:
            out = folder / f"{name}.mp4"
            dur = 0.0 if name == "cut" else DUR
            render_join(a, b, out, transition=name, duration=dur, fps=FPS)
            cache[name] = _frames(out)
        return cache[name], ref_a, ref_b

    return get


def _overlap(name: str) -> int:
    return 0 if name == "cut" else OVERLAP


ALL = sorted(TRANSITIONS)


def test_the_catalogue_has_the_transitions_a_studio_expects():
    expected = {
        "cut", "crossfade", "dip_to_black", "dip_to_white", "wipe_left",
        "wipe_right", "wipe_up", "wipe_down", "slide_left", "slide_right",
        "slide_up", "slide_down", "push_left", "push_right", "zoom_in",
        "zoom_out", "circle_open", "circle_close", "radial", "pixelize", "blur",
        "glitch", "flash", "whip_pan", "luma_wipe",
    }  # fmt: skip
    assert expected <= set(TRANSITIONS)
    assert len(TRANSITIONS) >= 25
    assert all(t.name == name for name, t in TRANSITIONS.items())


@pytest.mark.parametrize("name", ALL)
def test_each_transition_keeps_the_frame_count_and_the_clips_at_either_end(
    joined, name
):
    frames, ref_a, ref_b = joined(name)
    assert len(frames) == 2 * CLIP - _overlap(name)
    assert frames.shape[1:3] == (H, W)
    start = CLIP - _overlap(name)  # first frame of the window
    for frame in frames[:start]:
        assert _diff(frame, ref_a) < 4
    for frame in frames[start + _overlap(name) :]:
        assert _diff(frame, ref_b) < 4


@pytest.mark.parametrize("name", [n for n in ALL if n != "cut"])
def test_frames_inside_the_window_are_neither_clip(joined, name):
    frames, ref_a, ref_b = joined(name)
    start = CLIP - OVERLAP
    # The middle third of the window: near its edges a circle or a wipe has
    # only just begun, legitimately close to a or b.
    for k in range(OVERLAP // 3, OVERLAP - OVERLAP // 3):
        frame = frames[start + k]
        assert _changed(frame, ref_a) > 0.01, f"frame {k} of the window is still a"
        assert _changed(frame, ref_b) > 0.01, f"frame {k} of the window is b"


def test_a_cut_has_no_mixed_frames(joined):
    frames, ref_a, ref_b = joined("cut")
    assert all(_diff(f, ref_a) < 4 for f in frames[:CLIP])
    assert all(_diff(f, ref_b) < 4 for f in frames[CLIP:])


def _region(frame: np.ndarray, side: str) -> np.ndarray:
    w, h = frame.shape[1] // 6, frame.shape[0] // 6
    strips = {
        "left": frame[:, :w],
        "right": frame[:, -w:],
        "top": frame[:h],
        "bottom": frame[-h:],
    }
    return strips[side].reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("name", sorted(B_ENTERS_FROM))
def test_directional_transitions_bring_b_in_from_the_named_side(joined, name):
    frames, ref_a, ref_b = joined(name)
    middle = frames[CLIP - OVERLAP + OVERLAP // 2]
    entering = B_ENTERS_FROM[name]
    leaving = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
    sides = ((entering, ref_b, ref_a), (leaving[entering], ref_a, ref_b))
    for side, ref, other in sides:
        seen = _region(middle, side)
        assert np.abs(seen - _region(ref, side)).mean() < 25
        assert np.abs(seen - _region(other, side)).mean() > 60


def test_a_luma_wipe_reaches_the_top_left_corner_first(joined):
    frames, ref_a, ref_b = joined("luma_wipe")
    middle = frames[CLIP - OVERLAP + OVERLAP // 2]
    corner = slice(0, H // 6), slice(0, W // 6)
    far = slice(-H // 6, None), slice(-W // 6, None)
    assert _diff(middle[corner], ref_b[corner]) < 10
    assert _diff(middle[far], ref_a[far]) < 10


def test_blend_kinds_are_drawn_by_the_renderer_not_by_a_filter():
    blend_kinds = {t.name for t in TRANSITIONS.values() if t.kind == "blend"}
    assert blend_kinds == set(BLENDS)
    with pytest.raises(ValueError, match="drawn by the renderer"):
        join_filter("flash", 0.5, 1.0, "a", "b", "out", 30, 320, 180)


def test_dips_pass_through_black_and_white(joined):
    black, _, _ = joined("dip_to_black")
    white, _, _ = joined("dip_to_white")
    middle = CLIP - OVERLAP + OVERLAP // 2
    assert black[middle].max() < 20
    assert white[middle].min() > 235


def test_a_flash_has_a_near_white_frame_and_a_crossfade_does_not(joined):
    flash, _, _ = joined("flash")
    fade, _, _ = joined("crossfade")
    assert max(f.min() for f in flash) > 235
    assert max(f.min() for f in fade) < 200


def test_a_glitch_splits_the_colour_channels(tmp_path):
    # On flat colours a channel shift is invisible, and joining a clip to
    # itself hides the band flicker: what changes is the colour fringe at the
    # red/blue boundary, inside the window only.
    a = tmp_path / "halves.mp4"
    run_ffmpeg(
        ["-f", "lavfi", "-i", f"color=c=blue:s={W}x{H}:r={FPS}:d=1",
         "-vf", f"drawbox=x=0:y=0:w={W // 2}:h={H}:c=red:t=fill", *ENCODE],
        output=a,
    )  # fmt: skip
    out = tmp_path / "glitch.mp4"
    render_join(a, a, out, transition="glitch", duration=DUR, fps=FPS)
    frames = _frames(out)
    start = CLIP - OVERLAP
    assert _diff(frames[start - 2], frames[0]) < 2
    assert _diff(frames[start + OVERLAP // 2], frames[0]) > 2


def test_join_filter_builds_one_fragment_from_labels():
    graph = join_filter("dissolve", 0.5, 2.0, "v0", "v1", "j0", 30, 1920, 1080)
    assert graph.startswith("[v0]") and graph.endswith("[j0]")
    assert "xfade=transition=dissolve:duration=0.500000:offset=2.000000" in graph
    cut = join_filter("cut", 0, 2.0, "v0", "v1", "j0", 30, 1920, 1080)
    assert "concat=n=2" in cut and "trim=end=2.000000" in cut


@pytest.mark.parametrize(
    ("name", "duration", "message"),
    [
        ("star_wipe", 0.5, "choose one of: cut, crossfade"),
        ("crossfade", 0.0, "at least one frame"),
        ("crossfade", -1.0, "at least one frame"),
        ("crossfade", float("nan"), "at least one frame"),
        ("crossfade", 60.0, "at most"),
        ("cut", 0.5, "duration must be 0"),
    ],
)
def test_it_rejects_unknown_names_and_bad_durations(name, duration, message):
    with pytest.raises(ValueError, match=message):
        join_filter(name, duration, 1.0, "a", "b", "out", 30, 320, 180)


def test_it_rejects_labels_that_could_inject_filters():
    with pytest.raises(ValueError, match="label"):
        join_filter("crossfade", 0.5, 1.0, "a];[x", "b", "out", 30, 320, 180)
    with pytest.raises(ValueError, match="label"):
        join_filter("crossfade", 0.5, 1.0, "a", "b", "o;ut", 30, 320, 180)


def test_render_join_refuses_a_transition_longer_than_a_clip(tmp_path, clips):
    a, b = clips
    with pytest.raises(ValueError, match="at least that long"):
        render_join(a, b, tmp_path / "x.mp4", transition="crossfade", duration=2.0,
                    fps=FPS)  # fmt: skip


def test_a_clip_of_another_size_is_fitted_without_stretching(tmp_path, clips):
    a, _ = clips
    wide = tmp_path / "wide.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", f"color=c=green:s=320x90:r={FPS}:d=1",
                *ENCODE], output=wide)  # fmt: skip
    out = tmp_path / "fitted.mp4"
    render_join(a, wide, out, transition="crossfade", duration=DUR, fps=FPS)
    video = probe_media(out).of_kind("video")[0]
    assert (video.width, video.height, video.codec) == (W, H, "h264")
    assert get_transition("cut").kind == "cut"
