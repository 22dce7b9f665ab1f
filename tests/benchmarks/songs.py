"""The benchmark's songs: synthesized, so every beat, bar and section is known.

Each case is a ``SongSpec`` plus a short name. Together they span tempos from
60 to 190 BPM, 4/4 and 3/4, swing, tempo ramps, sparse intros, syncopation,
noise down to 6 dB SNR and several section structures with distinct material.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from workers.audio.synth import SongSpec, SynthesizedSong, synthesize_song, write_wav

POP = (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8), ("chorus", 8),
       ("outro", 4))  # fmt: skip
WITH_BRIDGE = (("intro", 4), ("verse", 8), ("chorus", 8), ("verse", 8),
               ("chorus", 8), ("bridge", 8), ("chorus", 8), ("outro", 4))  # fmt: skip
SHORT_INTRO = (("intro", 2), ("verse", 8), ("chorus", 8), ("bridge", 4),
               ("chorus", 8), ("outro", 4))  # fmt: skip
# Sixteen-bar sections keep fast songs from being over in a minute.
FAST = (("intro", 8), ("verse", 16), ("chorus", 16), ("verse", 16), ("chorus", 16),
        ("outro", 8))  # fmt: skip
WALTZ = (("intro", 4), ("verse", 12), ("chorus", 12), ("verse", 12), ("chorus", 12),
         ("outro", 4))  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    spec: SongSpec


def _song(name: str, bpm: float, seed: int, sections=POP, **kw) -> Case:
    spec = SongSpec(bpm=bpm, seed=seed, sections=sections, distinct_sections=True)
    return Case(name, replace(spec, **kw))


CASES: tuple[Case, ...] = (
    _song("ballad-60", 60, 1, SHORT_INTRO),
    _song("slow-68-swing", 68, 2, swing=1.5),
    _song("soul-75", 75, 3, WITH_BRIDGE),
    _song("hiphop-88-swing", 88, 4, swing=1.7, syncopation=True),
    _song("pop-96", 96, 5),
    _song("funk-104-synco", 104, 6, syncopation=True),
    _song("pop-112-bridge", 112, 7, WITH_BRIDGE),
    _song("pop-120", 120, 8),
    _song("house-126-synco", 126, 9, FAST, syncopation=True),
    _song("rock-138", 138, 10, FAST),
    _song("shuffle-144-swing", 144, 11, FAST, swing=2.0),
    _song("rock-158", 158, 12, FAST),
    _song("dnb-174", 174, 13, FAST),
    _song("punk-190", 190, 14, FAST),
    _song("waltz-84", 84, 15, WALTZ, beats_per_bar=3),
    _song("waltz-108", 108, 16, WALTZ, beats_per_bar=3),
    _song("waltz-144", 144, 17, WALTZ, beats_per_bar=3),
    _song("waltz-176", 176, 18, WALTZ, beats_per_bar=3),
    _song("ramp-100-130", 100, 19, bpm_end=130),
    _song("ramp-150-118", 150, 20, FAST, bpm_end=118),
    _song("sparse-intro-92", 92, 21, sparse_intro=True),
    _song("sparse-intro-132", 132, 22, FAST, sparse_intro=True),
    _song("noise-20db-116", 116, 23, noise_snr_db=20),
    _song("noise-10db-102", 102, 24, noise_snr_db=10),
    _song("noise-6db-synco-132", 132, 25, FAST, syncopation=True, noise_snr_db=6),
    _song("waltz-swing-96", 96, 26, WALTZ, beats_per_bar=3, swing=1.6),
    _song("plain-demo-120", 120, 2026, distinct_sections=False),
    _song("synco-sparse-165", 165, 27, FAST, syncopation=True, sparse_intro=True),
)


def render(case: Case, folder: Path) -> tuple[Path, SynthesizedSong]:
    song = synthesize_song(case.spec)
    return write_wav(folder / f"{case.name}.wav", song), song
