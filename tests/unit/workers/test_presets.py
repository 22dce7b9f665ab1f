from __future__ import annotations

import pytest

from workers.assembly.presets import PRESETS, get_preset


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("youtube", (1920, 1080)),
        ("youtube4k", (3840, 2160)),
        ("shorts", (1080, 1920)),
        ("square", (1080, 1080)),
        ("portrait", (1080, 1350)),
        ("preview", (640, 360)),
    ],
)
def test_each_preset_has_its_delivery_size_at_30_fps(name, size):
    preset = get_preset(name)
    assert (preset.name, preset.width, preset.height, preset.fps) == (name, *size, 30)


def test_every_preset_fits_yuv420p():
    assert all(p.width % 2 == 0 and p.height % 2 == 0 for p in PRESETS.values())


def test_an_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="youtube, youtube4k, shorts"):
        get_preset("vhs")
