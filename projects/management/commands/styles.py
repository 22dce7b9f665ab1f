"""``manage.py styles list|sync``: the style presets in the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from projects.models import StylePreset
from projects.styles import sync_styles


class Command(BaseCommand):
    help = (
        "List the style presets, or copy those of workers/storyboard/styles.yaml"
        " into the database (sync adds missing ones; --reset overwrites)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "sync"])
        parser.add_argument(
            "--reset",
            action="store_true",
            help="sync: overwrite the file's presets with the file's version",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["action"] == "sync":
            written = sync_styles(reset=opts["reset"])
            self.stdout.write(
                f"{len(written)} preset(s) written: {', '.join(written) or 'none'}"
            )
            return
        for row in StylePreset.objects.all():
            state = "" if row.enabled else " (disabled)"
            grade = f"{row.grade} {row.grade_intensity:g}" if row.grade else "no grade"
            self.stdout.write(
                f"{row.key:<14} {row.name}{state}: {grade}, motion {row.motion:g},"
                f" transitions {', '.join(row.transitions)}"
            )
