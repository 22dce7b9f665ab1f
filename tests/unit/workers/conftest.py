"""Shared media for the engine tests: everything is made here, nothing is
downloaded. Sizes stay small (320x180, songs of a few bars) to keep the folder
fast."""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
from PIL import Image

from workers.audio.synth import SongSpec, SynthesizedSong, synthesize_song, write_wav

SHORT_SONG = SongSpec(sections=(("intro", 2), ("verse", 4)))  # 12 s at 120 BPM


@pytest.fixture(scope="session")
def short_song() -> SynthesizedSong:
    return synthesize_song(SHORT_SONG)


@pytest.fixture(scope="session")
def song_wav(tmp_path_factory: pytest.TempPathFactory, short_song) -> Path:
    return write_wav(tmp_path_factory.mktemp("song") / "song.wav", short_song)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three visibly different pictures: two real photos and colour bars."""
    folder = tmp_path_factory.mktemp("images")
    astronaut = folder / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(astronaut)
    hopper = folder / "grace_hopper.jpg"
    sample = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    shutil.copyfile(sample, hopper)
    bars = np.zeros((360, 640, 3), dtype=np.uint8)
    colours = [(255, 255, 0), (0, 255, 255), (255, 0, 255), (20, 20, 20)]
    for i, colour in enumerate(colours):
        bars[:, i * 160 : (i + 1) * 160] = colour
    bars_path = folder / "bars.png"
    Image.fromarray(bars).save(bars_path)
    return [astronaut, hopper, bars_path]
