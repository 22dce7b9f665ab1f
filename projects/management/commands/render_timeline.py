"""``manage.py render_timeline EDIT.json -o OUT``: render a timeline document.

The renderer alone, with no project or job: what an editor or a script that
writes its own timelines calls. File names in the document are relative to
the document's folder unless ``--base-dir`` says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from workers.assembly.ffmpeg import FFmpegError
from workers.assembly.render import render_timeline
from workers.assembly.timeline import TimelineError, load_timeline


class Command(BaseCommand):
    help = "Render a timeline document (see workers/assembly/timeline.py) to a video."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("timeline", type=Path, help="the timeline, a JSON file")
        parser.add_argument("-o", "--output", type=Path, required=True)
        parser.add_argument(
            "--base-dir",
            type=Path,
            help="folder the document's file names are relative to "
            "(default: the document's folder)",
        )
        parser.add_argument("--thumbnail", type=Path, help="also write a JPEG here")
        parser.add_argument(
            "--json", action="store_true", help="print the render report as JSON"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source: Path = options["timeline"]
        try:
            timeline = load_timeline(source)
        except TimelineError as exc:
            raise CommandError(str(exc)) from exc
        base = options["base_dir"] or source.absolute().parent
        bar = (
            None
            if options["json"]
            else tqdm(total=1, unit="frame", desc="render", leave=False)
        )

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            report = render_timeline(
                timeline,
                options["output"],
                base_dir=base,
                on_progress=progress,
                thumbnail=options["thumbnail"],
            )
        except (TimelineError, ValueError, FFmpegError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        if options["json"]:
            self.stdout.write(json.dumps(asdict(report)))
        else:
            self.stdout.write(
                f"Rendered {report.duration:.2f} s, {report.frames} frames "
                f"{report.width}x{report.height} {report.format} in "
                f"{report.seconds:.1f} s: {options['output']}"
            )
