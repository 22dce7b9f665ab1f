"""``manage.py demo``: make the sample material and render it.

Everything comes from the project or its packages: two portraits (the
astronaut from scikit-image, Grace Hopper from matplotlib's sample data) and
a song synthesized from a seed with a known tempo and structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.cbook
import numpy as np
import skimage.data
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from PIL import Image

from workers.audio.synth import SongSpec, synthesize_song, write_wav

DEMO_SONG = SongSpec(bpm=120.0, seed=2026)


def write_demo_material(
    folder: Path, spec: SongSpec = DEMO_SONG, song_name: str = "demo-song.wav"
) -> dict[str, Any]:
    """Write the demo's photos and a song made from ``spec`` into ``folder``.

    Returns the paths ("astronaut", "hopper", "song") and the synthesized
    song itself ("song_truth": its exact beats and sections). The tests use
    the same material with a shorter song.
    """
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = folder / "astronaut.png"
    Image.fromarray(np.asarray(skimage.data.astronaut())).save(astronaut)
    hopper = folder / "grace_hopper.jpg"
    hopper_source = matplotlib.cbook.get_sample_data(
        "grace_hopper.jpg", asfileobj=False
    )
    hopper.write_bytes(Path(hopper_source).read_bytes())
    song = synthesize_song(spec)
    wav = write_wav(folder / song_name, song)
    return {"astronaut": astronaut, "hopper": hopper, "song": wav, "song_truth": song}


class Command(BaseCommand):
    help = "Render the sample music video (sample photos + a synthesized song) to OUT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", type=Path, default=Path("out/demo.mp4"))
        parser.add_argument("--duration", type=float, default=24.0, metavar="SECONDS")
        parser.add_argument("--preset", default="youtube")
        parser.add_argument("--format", default="mp4")

    def handle(self, *args: Any, **opts: Any) -> None:
        output: Path = opts["output"]
        material = write_demo_material(output.parent / "demo-material")
        call_command(
            "render",
            "--image", str(material["astronaut"]),
            "--image", str(material["hopper"]),
            "--audio", str(material["song"]),
            "--duration", str(opts["duration"]),
            "--preset", opts["preset"],
            "--format", opts["format"],
            "--title", "Demo",
            "-o", str(output),
            stdout=self.stdout,
            stderr=self.stderr,
        )  # fmt: skip
        self.stdout.write(f"Your sample music video is at {output.resolve()}")
