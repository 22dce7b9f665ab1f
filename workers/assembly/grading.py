"""Colour grading as 3D LUTs, applied by ffmpeg's ``lut3d``.

Each preset in ``GRADES`` is a pure numpy function from RGB in [0, 1] (any
array shaped ``(..., 3)``) to graded RGB, clamped to [0, 1]. ``build_lut``
samples one on a lattice; ``write_cube``/``read_cube`` move lattices through the
Adobe/Resolve ``.cube`` format; ``grade_filter`` turns a preset or a user's
``.cube`` into a filtergraph fragment.

A LUT here is a float32 array shaped ``(size, size, size, 3)`` indexed
``lut[r, g, b]`` (lattice indices of the input's red, green and blue), over the
unit domain.

Intensity is baked into the LUT rather than blended in the graph: the mix
``(1 - I) * x + I * grade(x)`` is linear in the table's entries, and both
trilinear and tetrahedral interpolation reproduce the identity lattice exactly,
so a LUT of ``(1 - I) * identity + I * grade`` gives the blended picture in one
``lut3d`` pass. That avoids a ``split``/``blend`` pair, whose blend would run on
whatever pixel format ffmpeg negotiated (usually YUV) and round twice.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_SIZE = 2
MAX_SIZE = 256  # ffmpeg's lut3d refuses larger lattices
DEFAULT_SIZE = 33

# Rec. 709 luma weights, on (gamma-encoded) RGB as graders' tools use them.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)


# --- building blocks -------------------------------------------------------


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb @ _LUMA)[..., None]


def _saturate(rgb: np.ndarray, amount: float) -> np.ndarray:
    # Scale the distance from the pixel's own grey: 0 = grey, 1 = unchanged.
    y = _luma(rgb)
    return y + (rgb - y) * amount


def _s_curve(x: np.ndarray, strength: float) -> np.ndarray:
    # Blend towards a smoothstep about mid-grey: 0 = linear, 1 = smoothstep.
    # Keeps 0 and 1 fixed, so contrast rises without clipping the ends.
    smooth = x * x * (3.0 - 2.0 * x)
    return x + (smooth - x) * strength


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _finish(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb, 0.0, 1.0)


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)


# --- presets -----------------------------------------------------------------


def cinematic_teal_orange(rgb: np.ndarray) -> np.ndarray:
    """Shadows pushed to teal, skin and highlights to orange, a little contrast."""
    x = _as_rgb(rgb)
    high = _smoothstep(0.15, 0.75, _luma(x))
    teal = np.array([-0.07, 0.03, 0.08])
    orange = np.array([0.08, 0.02, -0.08])
    x = x + (1.0 - high) * teal + high * orange
    return _finish(_s_curve(_saturate(_finish(x), 1.15), 0.3))


def neon(rgb: np.ndarray) -> np.ndarray:
    """Saturation pushed hard, magenta-tinted highlights, deepened blacks."""
    x = _as_rgb(rgb)
    x = _finish(_saturate(x, 1.7))
    x = _s_curve(x, 0.4)
    high = _smoothstep(0.5, 1.0, _luma(x))
    return _finish(x + high * np.array([0.04, -0.03, 0.05]))


def vintage_film(rgb: np.ndarray) -> np.ndarray:
    """Faded, yellowed print: lifted blacks, dulled whites, muted colour."""
    x = _saturate(_as_rgb(rgb), 0.7)
    x = 0.06 + 0.84 * _finish(x)  # black at 0.06, white at 0.90
    return _finish(x * np.array([1.05, 1.0, 0.85]) + np.array([0.0, 0.01, 0.0]))


def noir(rgb: np.ndarray) -> np.ndarray:
    """Black and white (Rec. 709 luma) with a firm contrast curve."""
    y = _luma(_as_rgb(rgb))
    y = _s_curve(y, 0.6)
    return _finish(np.repeat(y, 3, axis=-1))


def pastel(rgb: np.ndarray) -> np.ndarray:
    """Soft colour: saturation halved and everything lifted towards white."""
    x = _saturate(_as_rgb(rgb), 0.5)
    return _finish(0.25 + 0.75 * _finish(x))


def warm(rgb: np.ndarray) -> np.ndarray:
    """Golden cast: red gained up, blue gained down."""
    x = _as_rgb(rgb)
    return _finish(x * np.array([1.08, 1.01, 0.86]))


def cool(rgb: np.ndarray) -> np.ndarray:
    """Blue cast: blue gained up, red gained down."""
    x = _as_rgb(rgb)
    return _finish(x * np.array([0.88, 0.99, 1.08]))


def high_contrast(rgb: np.ndarray) -> np.ndarray:
    """Strong S-curve on each channel: deeper shadows, brighter highlights."""
    x = _as_rgb(rgb)
    # Two passes of the full smoothstep steepen mid-grey to a slope of 2.25.
    return _finish(_s_curve(_s_curve(x, 1.0), 1.0))


def faded(rgb: np.ndarray) -> np.ndarray:
    """Matte look: blacks lifted to grey, whites pulled down, colour muted."""
    x = _saturate(_as_rgb(rgb), 0.8)
    return _finish(0.1 + 0.82 * _finish(x))


def bleach_bypass(rgb: np.ndarray) -> np.ndarray:
    """Silver retained: colour half gone, contrast up, metallic highlights."""
    x = _as_rgb(rgb)
    grey = np.repeat(_luma(x), 3, axis=-1)
    # Overlay the luma on the picture (the silver layer), then desaturate.
    overlay = np.where(grey < 0.5, 2 * x * grey, 1 - 2 * (1 - x) * (1 - grey))
    x = 0.4 * x + 0.6 * overlay
    return _finish(_s_curve(_saturate(_finish(x), 0.45), 0.5))


@dataclass(frozen=True)
class Grade:
    """A named colour grade: ``fn`` maps RGB in [0, 1] to graded RGB."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    description: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.fn(rgb)


def _grade(fn: Callable[[np.ndarray], np.ndarray]) -> Grade:
    doc = (fn.__doc__ or "").strip().splitlines()
    return Grade(fn.__name__, fn, doc[0] if doc else "")


GRADES: dict[str, Grade] = {
    g.name: g
    for g in map(
        _grade,
        [
            cinematic_teal_orange,
            neon,
            vintage_film,
            noir,
            pastel,
            warm,
            cool,
            high_contrast,
            faded,
            bleach_bypass,
        ],
    )
}


def get_grade(name: str) -> Grade:
    """The preset called ``name``; ValueError naming the choices."""
    try:
        return GRADES[name]
    except (KeyError, TypeError):
        choices = ", ".join(GRADES)
        raise ValueError(f"Unknown grade {name!r}; choose one of: {choices}.") from None


# --- lattices ----------------------------------------------------------------


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError(f"LUT size must be an integer, got {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"LUT size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    return int(size)


def identity_lut(size: int = DEFAULT_SIZE) -> np.ndarray:
    """The LUT that maps every colour to itself."""
    size = _check_size(size)
    axis = np.linspace(0.0, 1.0, size)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1).astype(np.float32)


def build_lut(grade: str, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The preset ``grade`` sampled on a ``size``-point lattice per axis.

    Shape ``(size, size, size, 3)``, float32, indexed ``lut[r, g, b]``.
    """
    fn = get_grade(grade)
    lattice = identity_lut(size).astype(np.float64)
    return np.clip(fn(lattice), 0.0, 1.0).astype(np.float32)


def _check_lut(lut: np.ndarray) -> np.ndarray:
    lut = np.asarray(lut)
    n = lut.shape[0] if lut.ndim == 4 else 0
    if lut.ndim != 4 or lut.shape != (n, n, n, 3):
        raise ValueError(f"a LUT must be shaped (n, n, n, 3), got {lut.shape}")
    _check_size(n)
    if not np.all(np.isfinite(lut)):
        raise ValueError("LUT holds non-finite values")
    return lut


def _check_intensity(intensity: float) -> float:
    if isinstance(intensity, bool) or not isinstance(
        intensity, int | float | np.floating | np.integer
    ):
        raise ValueError(f"intensity must be a number in 0..1, got {intensity!r}")
    value = float(intensity)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"intensity must be in 0..1, got {intensity!r}")
    return value


def blend_lut(lut: np.ndarray, intensity: float) -> np.ndarray:
    """``lut`` mixed with the identity: 0 = no change, 1 = the full grade."""
    lut = _check_lut(lut)
    intensity = _check_intensity(intensity)
    ident = identity_lut(lut.shape[0]).astype(np.float64)
    mixed = ident + (lut.astype(np.float64) - ident) * intensity
    return mixed.astype(np.float32)


def apply_lut(image: np.ndarray, lut: np.ndarray, intensity: float = 1.0) -> np.ndarray:
    """Grade ``image`` (H, W, 3) through ``lut`` by trilinear interpolation.

    uint8 images come back as uint8 (rounded); float images are taken as
    [0, 1] and come back as float32. For tests and previews: renders use
    ffmpeg's tetrahedral ``lut3d``, which agrees to within rounding on smooth
    LUTs.
    """
    lut = _check_lut(lut).astype(np.float64)
    intensity = _check_intensity(intensity)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"image must be shaped (H, W, 3), got {arr.shape}")
    is_uint8 = arr.dtype == np.uint8
    x = arr.astype(np.float64) / 255.0 if is_uint8 else arr.astype(np.float64)
    x = np.clip(x, 0.0, 1.0)
    n = lut.shape[0]
    pos = x * (n - 1)
    i0 = np.clip(np.floor(pos).astype(np.intp), 0, n - 2)
    f = pos - i0
    r0, g0, b0 = i0[..., 0], i0[..., 1], i0[..., 2]
    fr, fg, fb = f[..., 0:1], f[..., 1:2], f[..., 2:3]
    out = np.zeros(x.shape, dtype=np.float64)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dg, wg in ((0, 1 - fg), (1, fg)):
            for db, wb in ((0, 1 - fb), (1, fb)):
                out += wr * wg * wb * lut[r0 + dr, g0 + dg, b0 + db]
    out = x + (out - x) * intensity
    out = np.clip(out, 0.0, 1.0)
    if is_uint8:
        return np.round(out * 255.0).astype(np.uint8)
    return out.astype(np.float32)


# --- .cube files ---------------------------------------------------------------

# How far outside the domain an output value may stray before the file is
# taken as broken (HDR-ish LUTs overshoot a little; garbage overshoots a lot).
_RANGE_SLACK = 1.0


@dataclass(frozen=True)
class CubeFile:
    """A parsed ``.cube``: the table over its own domain, as stored."""

    title: str
    lut: np.ndarray  # (n, n, n, 3) float32, lut[r, g, b]
    domain_min: tuple[float, float, float]
    domain_max: tuple[float, float, float]


def write_cube(
    lut: np.ndarray,
    path: str | Path,
    title: str = "",
    *,
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0),
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> Path:
    """Write ``lut`` as an Adobe/Resolve ``.cube`` file (red fastest)."""
    lut = _check_lut(lut)
    n = lut.shape[0]
    # Quotes and line breaks would end the TITLE early.
    clean_title = " ".join(re.sub(r'["\r\n]', " ", title).split())
    lines = []
    if clean_title:
        lines.append(f'TITLE "{clean_title}"')
    lines += [
        f"LUT_3D_SIZE {n}",
        "DOMAIN_MIN " + " ".join(f"{v:.9g}" for v in domain_min),
        "DOMAIN_MAX " + " ".join(f"{v:.9g}" for v in domain_max),
    ]
    # lut is indexed [r, g, b]; (b, g, r) order makes red vary fastest.
    rows = lut.astype(np.float32).transpose(2, 1, 0, 3).reshape(-1, 3)
    # 9 significant digits round-trip any float32 exactly.
    lines += [f"{r:.9g} {g:.9g} {b:.9g}" for r, g, b in rows.tolist()]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _floats(words: list[str], lineno: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(w) for w in words)
    except ValueError:
        bad = next(w for w in words if not _is_float(w))
        raise ValueError(
            f"line {lineno}: non-numeric value {bad!r} in {what}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"line {lineno}: non-finite value in {what}")
    return values


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


_Header = tuple[tuple[float, float, float], tuple[float, float, float], int | None, str]


def _keyword(
    key: str, words: list[str], line: str, lineno: int, header: _Header
) -> _Header:
    dmin, dmax, size, title = header
    if key == "TITLE":
        title = line[len(words[0]) :].strip().strip('"')
    elif key in ("LUT_1D_SIZE", "LUT_1D_INPUT_RANGE"):
        raise ValueError(f"line {lineno}: 1D LUTs are not supported")
    elif key == "LUT_3D_SIZE":
        if size is not None:
            raise ValueError(f"line {lineno}: LUT_3D_SIZE given twice")
        if len(words) != 2 or not re.fullmatch(r"\d+", words[1]):
            raise ValueError(
                f"line {lineno}: LUT_3D_SIZE needs one whole number, got {line!r}"
            )
        size = int(words[1])
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(
                f"line {lineno}: LUT_3D_SIZE {size} is out of range "
                f"{MIN_SIZE}..{MAX_SIZE}"
            )
    elif key in ("DOMAIN_MIN", "DOMAIN_MAX"):
        if len(words) != 4:
            raise ValueError(f"line {lineno}: {key} needs 3 values")
        v = _floats(words[1:], lineno, key)
        if key == "DOMAIN_MIN":
            dmin = (v[0], v[1], v[2])
        else:
            dmax = (v[0], v[1], v[2])
    elif key == "LUT_3D_INPUT_RANGE":  # Resolve's spelling of the domain
        if len(words) != 3:
            raise ValueError(f"line {lineno}: {key} needs 2 values")
        lo, hi = _floats(words[1:], lineno, key)
        dmin, dmax = (lo, lo, lo), (hi, hi, hi)
    else:
        raise ValueError(f"line {lineno}: unknown keyword {words[0]!r}")
    return dmin, dmax, size, title


def parse_cube(text: str) -> CubeFile:
    """Parse ``.cube`` text; ValueError naming the line and the problem."""
    title = ""
    size: int | None = None
    dmin = (0.0, 0.0, 0.0)
    dmax = (1.0, 1.0, 1.0)
    rows: list[tuple[float, ...]] = []
    first_row_line = 0
    last_line = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        last_line = lineno
        words = line.split()
        key = words[0].upper()
        if re.match(r"[A-Z_]", key) and not _is_float(words[0]):
            if rows and key != "TITLE":
                raise ValueError(f"line {lineno}: {words[0]} after the data rows")
            dmin, dmax, size, title = _keyword(
                key, words, line, lineno, (dmin, dmax, size, title)
            )
            continue
        # A data row.
        if size is None:
            raise ValueError(f"line {lineno}: data before LUT_3D_SIZE (missing size)")
        if len(words) != 3:
            raise ValueError(
                f"line {lineno}: a data row needs 3 values, got {len(words)}"
            )
        if not rows:
            first_row_line = lineno
        rows.append(_floats(words, lineno, "data row"))
        if len(rows) > size**3:
            raise ValueError(
                f"line {lineno}: too many data rows, expected {size**3} "
                f"for LUT_3D_SIZE {size}"
            )
    if size is None:
        raise ValueError(f"line {last_line or 1}: missing LUT_3D_SIZE")
    if len(rows) != size**3:
        raise ValueError(
            f"line {last_line}: expected {size**3} data rows for LUT_3D_SIZE "
            f"{size}, found {len(rows)}"
        )
    if any(lo >= hi for lo, hi in zip(dmin, dmax, strict=True)):
        raise ValueError(f"DOMAIN_MIN {dmin} must be below DOMAIN_MAX {dmax}")
    table = np.array(rows, dtype=np.float64)
    low = min(dmin) - _RANGE_SLACK * (max(dmax) - min(dmin))
    high = max(dmax) + _RANGE_SLACK * (max(dmax) - min(dmin))
    outside = np.nonzero((table < low) | (table > high))[0]
    if outside.size:
        row = int(outside[0])
        raise ValueError(
            f"line {_row_line(text, first_row_line, row)}: value out of range "
            f"{low:g}..{high:g}: {' '.join(f'{v:g}' for v in table[row])}"
        )
    lut = table.reshape(size, size, size, 3).transpose(2, 1, 0, 3)
    return CubeFile(title, np.ascontiguousarray(lut, dtype=np.float32), dmin, dmax)


def _row_line(text: str, first_row_line: int, row: int) -> int:
    # Line number of the row-th data row, skipping comments and blanks.
    seen = -1
    lines = text.splitlines()
    for lineno in range(first_row_line, len(lines) + 1):
        line = lines[lineno - 1].strip()
        if line and not line.startswith("#"):
            seen += 1
            if seen == row:
                return lineno
    return first_row_line


def _load_cube(path: str | Path) -> CubeFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text .cube file") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return parse_cube(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_cube(path: str | Path) -> np.ndarray:
    """Read a 3D ``.cube`` file as a LUT over the unit domain.

    A file with another DOMAIN_MIN/MAX is resampled onto the unit lattice
    (inputs outside its domain clamp to its edge, as ffmpeg does). ValueError
    names the line and the problem for malformed files.
    """
    cube = _load_cube(path)
    lo = np.array(cube.domain_min)
    hi = np.array(cube.domain_max)
    if np.all(lo == 0.0) and np.all(hi == 1.0):
        return cube.lut
    n = cube.lut.shape[0]
    unit = identity_lut(n).astype(np.float64)
    coords = np.clip((unit - lo) / (hi - lo), 0.0, 1.0)
    flat = coords.reshape(n * n, n, 3)
    return apply_lut(flat, cube.lut).reshape(n, n, n, 3)


# --- ffmpeg ------------------------------------------------------------------


def escape_filter_value(value: str) -> str:
    """``value`` escaped as one filter option inside a filtergraph.

    Two levels, as ffmpeg's filtergraph docs describe: first for the option
    parser (``\\``, ``'`` and ``:``), then for the graph parser (``\\``, ``'``,
    ``[``, ``]``, ``,`` and ``;``).
    """
    level1 = re.sub(r"([\\':])", r"\\\1", value)
    return re.sub(r"([\\'\[\],;])", r"\\\1", level1)


def _digest(lut: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(lut).tobytes()).hexdigest()[:16]


def grade_filter(grade_or_cube: str | Path, intensity: float, workdir: Path) -> str:
    """An ffmpeg filter fragment grading video with a preset or a ``.cube``.

    ``grade_or_cube`` is a preset name from ``GRADES`` (a ``str``) or the path
    of a user's ``.cube`` (a ``Path``, or a ``str`` ending in ``.cube``). The
    LUT, with ``intensity`` baked in (see the module notes), is written into
    ``workdir`` under a generated name (preset or "user", plus a hash of the
    table); a user's file is validated first and copied in canonical form (same
    table and domain) at full intensity. Returns
    ``lut3d=file=<escaped path>:interp=tetrahedral``, or ``null`` at intensity
    0. lut3d works in RGB, so ffmpeg converts to an RGB format in front of it.
    """
    intensity = _check_intensity(intensity)
    workdir = Path(workdir)
    is_cube = isinstance(grade_or_cube, Path) or (
        isinstance(grade_or_cube, str)
        and grade_or_cube not in GRADES
        and grade_or_cube.lower().endswith(".cube")
    )
    if is_cube:
        source = Path(grade_or_cube)
        cube = _load_cube(source)  # validates before anything reaches ffmpeg
        if intensity == 0.0:
            return "null"
        if intensity == 1.0:
            # Re-written in canonical form rather than byte-copied, so ffmpeg's
            # stricter parser never sees the variants read_cube tolerates
            # (LUT_3D_INPUT_RANGE, lower-case keywords, odd spacing).
            target = workdir / f"user-{_digest(cube.lut)}.cube"
            workdir.mkdir(parents=True, exist_ok=True)
            write_cube(
                cube.lut,
                target,
                title=cube.title,
                domain_min=cube.domain_min,
                domain_max=cube.domain_max,
            )
        else:
            lut = blend_lut(read_cube(source), intensity)
            target = workdir / f"user-{_digest(lut)}.cube"
            workdir.mkdir(parents=True, exist_ok=True)
            write_cube(lut, target, title=cube.title)
    else:
        grade = get_grade(str(grade_or_cube))
        if intensity == 0.0:
            return "null"
        lut = blend_lut(build_lut(grade.name), intensity)
        target = workdir / f"grade-{grade.name}-{_digest(lut)}.cube"
        workdir.mkdir(parents=True, exist_ok=True)
        write_cube(lut, target, title=f"{grade.name} {intensity:g}")
    path = escape_filter_value(str(target.absolute()))
    return f"lut3d=file={path}:interp=tetrahedral"
