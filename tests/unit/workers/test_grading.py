from __future__ import annotations

import colorsys
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from workers.assembly.ffmpeg import run_ffmpeg
from workers.assembly.grading import (
    GRADES,
    apply_lut,
    build_lut,
    escape_filter_value,
    grade_filter,
    identity_lut,
    read_cube,
    write_cube,
)

LUMA = np.array([0.2126, 0.7152, 0.0722])
SKIN = (224, 172, 140)  # a light skin tone


def _test_image() -> dict[str, np.ndarray]:
    """A hue x value colour gradient, a grey ramp and a skin-tone patch (uint8)."""
    hues = np.linspace(0, 1, 48, endpoint=False)
    values = np.linspace(0.3, 1.0, 8)
    gradient = np.array(
        [[colorsys.hsv_to_rgb(h, 0.8, v) for h in hues] for v in values]
    )
    grey = np.repeat(np.linspace(0, 1, 48)[None, :, None], 3, axis=2)
    grey = np.repeat(grey, 4, axis=0)
    skin = np.broadcast_to(np.array(SKIN) / 255.0, (4, 48, 3))
    as8 = {"gradient": gradient, "grey": grey, "skin": skin}
    return {k: np.round(v * 255).astype(np.uint8) for k, v in as8.items()}


IMAGE = _test_image()
WHOLE = np.concatenate(list(IMAGE.values()), axis=0)


def _f(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) / 255.0


def _sat(img: np.ndarray) -> float:
    x = _f(img)
    return float(np.mean(x.max(axis=-1) - x.min(axis=-1)))


def _luma(img: np.ndarray) -> np.ndarray:
    return _f(img) @ LUMA


@pytest.fixture(scope="module")
def graded() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name in GRADES:
        lut = build_lut(name)
        out[name] = {k: apply_lut(v, lut) for k, v in IMAGE.items()}
    return out


def test_presets_are_documented_and_clamped() -> None:
    assert len(GRADES) >= 10
    rng = np.random.default_rng(1)
    wild = rng.uniform(-0.5, 1.5, (200, 3))
    for name, grade in GRADES.items():
        assert grade.description and "\n" not in grade.description, name
        out = grade(wild)
        assert out.shape == wild.shape
        assert out.min() >= 0.0 and out.max() <= 1.0, name
        lut = build_lut(name, size=5)
        assert lut.shape == (5, 5, 5, 3) and lut.dtype == np.float32


def test_every_preset_changes_the_image(graded) -> None:
    for name in GRADES:
        after = np.concatenate(list(graded[name].values()), axis=0)
        diff = np.abs(after.astype(int) - WHOLE.astype(int)).mean()
        assert diff > 3, (name, diff)


def test_noir_is_grey(graded) -> None:
    assert _sat(graded["noir"]["gradient"]) < 0.01


def test_warm_and_cool_shift_red_blue_ratio(graded) -> None:
    def rb(img: np.ndarray) -> float:
        x = _f(img).reshape(-1, 3)
        return float(x[:, 0].mean() / x[:, 2].mean())

    before = rb(WHOLE)
    warm = rb(np.concatenate(list(graded["warm"].values())))
    cool = rb(np.concatenate(list(graded["cool"].values())))
    assert warm > before * 1.1
    assert cool < before / 1.1


def test_high_contrast_spreads_the_grey_ramp(graded) -> None:
    assert _luma(graded["high_contrast"]["grey"]).std() > _luma(IMAGE["grey"]).std()


def test_faded_lifts_blacks(graded) -> None:
    assert _luma(IMAGE["grey"]).min() == 0.0
    assert _luma(graded["faded"]["grey"]).min() > 0.05


def test_pastel_desaturates_and_brightens(graded) -> None:
    g = graded["pastel"]
    assert _sat(g["gradient"]) < 0.7 * _sat(IMAGE["gradient"])
    assert _luma(g["gradient"]).mean() > _luma(IMAGE["gradient"]).mean() + 0.05
    assert _luma(g["grey"]).mean() > _luma(IMAGE["grey"]).mean() + 0.05


def test_teal_orange_splits_shadows_and_highlights(graded) -> None:
    g = graded["cinematic_teal_orange"]

    def teal(img: np.ndarray) -> float:
        x = _f(img).reshape(-1, 3)
        return float(((x[:, 1] + x[:, 2]) / 2 - x[:, 0]).mean())

    def orange(img: np.ndarray) -> float:
        x = _f(img).reshape(-1, 3)
        return float((x[:, 0] - x[:, 2]).mean())

    dark = slice(2, 14)  # grey ramp 0.04..0.28: shadows, not pure black
    bright = slice(36, 47)  # 0.77..0.98
    assert teal(g["grey"][:, dark]) > teal(IMAGE["grey"][:, dark]) + 0.03
    assert orange(g["grey"][:, bright]) > orange(IMAGE["grey"][:, bright]) + 0.03
    assert orange(g["skin"]) > orange(IMAGE["skin"]) + 0.03


def test_neon_boosts_saturation(graded) -> None:
    # Neon: colour far more vivid (mean chroma up by a fifth or more).
    assert _sat(graded["neon"]["gradient"]) > 1.2 * _sat(IMAGE["gradient"])


def test_vintage_film_compresses_range_and_yellows(graded) -> None:
    # Vintage: a faded print, so no true black or white, and a yellow cast
    # (blue below red and green on what was neutral grey).
    g = graded["vintage_film"]
    lum = _luma(g["grey"])
    assert lum.min() > 0.04 and lum.max() < 0.95
    x = _f(g["grey"]).reshape(-1, 3)
    assert x[:, 2].mean() < x[:, 0].mean() - 0.03
    assert _sat(g["gradient"]) < _sat(IMAGE["gradient"])


def test_bleach_bypass_desaturates_and_adds_contrast(graded) -> None:
    # Bleach bypass: less colour but *more* contrast (unlike faded/pastel).
    g = graded["bleach_bypass"]
    assert _sat(g["gradient"]) < 0.75 * _sat(IMAGE["gradient"])
    assert _luma(g["grey"]).std() > _luma(IMAGE["grey"]).std()


def test_identity_and_zero_intensity_leave_pixels_alone() -> None:
    out = apply_lut(WHOLE, identity_lut(17))
    assert np.abs(out.astype(int) - WHOLE.astype(int)).max() <= 1
    out = apply_lut(WHOLE, build_lut("noir"), intensity=0.0)
    assert np.abs(out.astype(int) - WHOLE.astype(int)).max() <= 1
    floats = apply_lut(_f(WHOLE), identity_lut(2))
    assert np.abs(floats - _f(WHOLE)).max() < 1e-6


def test_half_intensity_is_between(graded) -> None:
    half = apply_lut(IMAGE["gradient"], build_lut("noir"), intensity=0.5)
    full = graded["noir"]["gradient"]
    mid = (IMAGE["gradient"].astype(float) + full) / 2
    assert np.abs(half - mid).max() <= 1.0


def test_cube_round_trip(tmp_path: Path) -> None:
    for name in ("cinematic_teal_orange", "bleach_bypass"):
        lut = build_lut(name, size=9)
        path = write_cube(lut, tmp_path / f"{name}.cube", title=f'my "{name}"\n')
        back = read_cube(path)
        assert back.shape == lut.shape
        assert np.array_equal(back, lut)
    text = (tmp_path / "bleach_bypass.cube").read_text().splitlines()
    assert text[0] == 'TITLE "my bleach_bypass"'
    assert "LUT_3D_SIZE 9" in text


def test_cube_rows_are_red_fastest(tmp_path: Path) -> None:
    lut = identity_lut(2)
    rows = write_cube(lut, tmp_path / "i.cube").read_text().splitlines()[-8:]
    values = [tuple(float(v) for v in r.split()) for r in rows]
    assert values[:3] == [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    assert values[4] == (0, 0, 1)


def test_cube_with_comments_and_domain(tmp_path: Path) -> None:
    # Domain 0..2: the lattice covers twice the range, so unit inputs land on
    # the lower half; an identity over 0..2 reads back as identity over 0..1.
    rows = [f"{r * 2} {g * 2} {b * 2}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]
    text = "\n".join(
        [
            "# made by hand",
            'TITLE "doubled"',
            "",
            "LUT_3D_SIZE 2",
            "DOMAIN_MIN 0 0 0",
            "DOMAIN_MAX 2 2 2",
            *rows,
            "# trailing comment",
        ]
    )
    path = tmp_path / "d.cube"
    path.write_text(text)
    assert np.allclose(read_cube(path), identity_lut(2), atol=1e-6)
    # The copy handed to ffmpeg keeps the file's own table and domain.
    grade_filter(path, 1.0, tmp_path / "work")
    (copy,) = (tmp_path / "work").glob("user-*.cube")
    lines = copy.read_text().splitlines()
    assert lines[0] == 'TITLE "doubled"' and "DOMAIN_MAX 2 2 2" in lines
    assert np.allclose(read_cube(copy), identity_lut(2), atol=1e-6)
    # Resolve's LUT_3D_INPUT_RANGE is read as the same domain.
    path.write_text(
        text.replace("DOMAIN_MIN 0 0 0\nDOMAIN_MAX 2 2 2", "LUT_3D_INPUT_RANGE 0 2")
    )
    assert "INPUT_RANGE" in path.read_text()
    assert np.allclose(read_cube(path), identity_lut(2), atol=1e-6)


MALFORMED = {
    "missing size": ("0 0 0\n1 1 1\n", "missing size"),
    "no size at all": ('TITLE "x"\n', "missing LUT_3D_SIZE"),
    "wrong count": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7, "expected 8 data rows"),
    "too many": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 9, "too many data rows"),
    "non-numeric": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 3 + "0 x 0\n", "non-numeric"),
    "short row": ("LUT_3D_SIZE 2\n0 0\n", "needs 3 values"),
    "1d": ("LUT_1D_SIZE 16\n", "1D LUTs are not supported"),
    "size too small": ("LUT_3D_SIZE 1\n0 0 0\n", "out of range 2..256"),
    "size too big": ("LUT_3D_SIZE 257\n", "out of range 2..256"),
    "size not a number": ("LUT_3D_SIZE two\n", "whole number"),
    "way out of range": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 90 0\n", "range"),
    "nan": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 nan 0\n", "non-finite"),
    "unknown keyword": ("LUT_3D_SIZE 2\nFOO 1\n", "unknown keyword"),
    "bad domain": (
        "LUT_3D_SIZE 2\nDOMAIN_MIN 1 1 1\nDOMAIN_MAX 0 0 0\n" + "0 0 0\n" * 8,
        "DOMAIN_MIN",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_cubes_are_rejected(tmp_path: Path, case: str) -> None:
    text, problem = MALFORMED[case]
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as info:
        read_cube(path)
    assert "bad.cube" in str(info.value)
    if case not in ("bad domain",):
        assert "line " in str(info.value)


def test_binary_cube_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bin.cube"
    path.write_bytes(b"\xff\xfe\x00LUT")
    with pytest.raises(ValueError, match="not a text"):
        read_cube(path)


def test_grade_filter_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="noir, pastel"):
        grade_filter("sepia", 1.0, tmp_path)
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="intensity"):
            grade_filter("noir", bad, tmp_path)
    assert grade_filter("noir", 0.0, tmp_path) == "null"
    assert grade_filter("noir", 0, tmp_path) == "null"
    broken = tmp_path / "broken.cube"
    broken.write_text("LUT_3D_SIZE 2\n0 0 0\n")
    with pytest.raises(ValueError, match="expected 8 data rows"):
        grade_filter(broken, 1.0, tmp_path)


def test_grade_filter_writes_into_workdir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    fragment = grade_filter("warm", 1.0, work)
    assert fragment.startswith("lut3d=file=") and ":interp=tetrahedral" in fragment
    (written,) = work.glob("*.cube")
    assert written.name.startswith("grade-warm-")
    assert np.allclose(read_cube(written), build_lut("warm"), atol=1e-6)
    # A user's cube is copied at full strength, blended below it.
    user = write_cube(build_lut("cool", 5), tmp_path / "mine.cube")
    grade_filter(user, 1.0, work)
    grade_filter(str(user), 0.5, work)
    users = sorted(work.glob("user-*.cube"))
    assert len(users) == 2
    # The full-strength copy holds the very same table.
    assert sum(np.array_equal(read_cube(p), read_cube(user)) for p in users) == 1


def test_escape_filter_value() -> None:
    assert escape_filter_value("/a/b.cube") == "/a/b.cube"
    assert escape_filter_value("a:b") == "a\\\\:b"
    assert escape_filter_value("a\\b") == "a\\\\\\\\b"
    assert escape_filter_value("a,b") == "a\\,b"
    assert escape_filter_value("it's") == "it\\\\\\'s"


# --- one real ffmpeg run ---------------------------------------------------


def _render(fragment: str, path: Path) -> np.ndarray:
    # Lossless RGB output so only the grade differs between renders.
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=64x36:r=2:d=1",
            "-frames:v",
            "2",
            "-vf",
            fragment,
            "-c:v",
            "ffv1",
            "-pix_fmt",
            "bgr0",
        ],
        output=path,
    )
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 2
    return np.stack(frames).astype(np.float64)


def test_ffmpeg_applies_the_grade(tmp_path: Path) -> None:
    # Awkward characters in the folder name exercise the filtergraph escaping.
    work = tmp_path / "lu ts:a,b'c[d];e\\f"
    original = _render("null", tmp_path / "orig.mkv")
    full = _render(grade_filter("noir", 1.0, work), tmp_path / "full.mkv")
    half = _render(grade_filter("noir", 0.5, work), tmp_path / "half.mkv")
    assert _chroma(original) > 0.2
    assert _chroma(full) < 3 / 255
    # Half strength sits half way between the original and the full grade.
    assert np.abs(half - (original + full) / 2).mean() < 2.0
    assert _chroma(full) < _chroma(half) < _chroma(original)
    # And matches the numpy preview of the same LUT closely.
    preview = apply_lut(original[0].astype(np.uint8), build_lut("noir"))
    assert np.abs(full[0] - preview).mean() < 2.0
    shutil.rmtree(work)


def _chroma(frames: np.ndarray) -> float:
    x = frames / 255.0
    return float(np.mean(x.max(axis=-1) - x.min(axis=-1)))
