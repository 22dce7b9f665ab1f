"""``manage.py analyze_audio PATH --json``: tempo, beats, downbeats, onsets,
sections and energy of a song (the contract in DESIGN.md), stored by the
song's content hash so the same song is analysed once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from projects.analysis import analyse_file, analysis_svg


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Command(BaseCommand):
    help = (
        "Analyse a song: tempo, beats, downbeats, onsets, sections, energy, "
        "meter, tempo curve and loudness. --json prints the analysis."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, metavar="PATH")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument(
            "--svg", type=Path, metavar="OUT", help="also draw the song's picture"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            analysis = analyse_file(path, file_sha256(path))
        except ValueError as exc:  # AudioDecodeError, AudioAnalysisError
            raise CommandError(str(exc)) from exc
        if opts["svg"]:
            opts["svg"].write_text(analysis_svg(analysis))
        if opts["json"]:
            self.stdout.write(json.dumps(analysis.to_contract()))
            return
        sections = ", ".join(s["label"] for s in analysis.sections)
        self.stdout.write(
            f"{path.name}: {analysis.duration:.2f} s, {analysis.bpm:.1f} BPM "
            f"(confidence {analysis.bpm_confidence:.2f}), {analysis.meter}/4, "
            f"{len(analysis.beats)} beats, {len(analysis.downbeats)} bars, "
            f"{analysis.loudness_lufs:.1f} LUFS; sections: {sections}"
        )
