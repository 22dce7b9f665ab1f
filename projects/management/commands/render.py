"""``manage.py render``: the whole pipeline, in this process, from files on disk
to a finished video. The same tasks run as on the farm; only the transport
differs (the canvas is applied in-process)."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from media_jobs.progress import ProgressPayload, add_listener, remove_listener
from projects.models import FORMAT_CHOICES, PRESET_CHOICES, Project
from projects.pipeline import RenderNotReady, render_now
from projects.styles import UnknownStyle, check_style
from projects.uploads import UploadRejected, add_asset_from_path

CLI_USER = "studio-cli"


class Command(BaseCommand):
    help = (
        "Render a music video from photos and a song, in this process. "
        "Prints where the video is; with --json, prints the render's manifest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--image",
            action="append",
            required=True,
            type=Path,
            metavar="PATH",
            help="a photo of the character (repeat for several; used in turn)",
        )
        parser.add_argument(
            "--audio", required=True, type=Path, metavar="PATH", help="the song"
        )
        parser.add_argument(
            "--script",
            type=Path,
            metavar="PATH",
            help="a Markdown/text/PDF script, stored with the project",
        )
        parser.add_argument(
            "--style",
            default="cinematic",
            help="a style preset's key (cinematic, anime, neon_noir, ...;"
            " `manage.py styles list` shows them)",
        )
        parser.add_argument(
            "--duration",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="length of the video (at most the song's length; default 30)",
        )
        parser.add_argument(
            "--preset", default="youtube", choices=[c for c, _ in PRESET_CHOICES]
        )
        parser.add_argument(
            "--format", default="mp4", choices=[c for c, _ in FORMAT_CHOICES]
        )
        parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT")
        parser.add_argument(
            "--title", default="", help="project title (default: the song's name)"
        )
        parser.add_argument(
            "--user",
            default=CLI_USER,
            help=f"owner of the project made for this render (default {CLI_USER!r})",
        )
        parser.add_argument(
            "--review",
            default=Project.ReviewPolicy.CONTINUE,
            choices=Project.ReviewPolicy.values,
            help=(
                "scenes that fail the character check after every attempt:"
                " 'continue' (default here) renders them and lists them;"
                " 'hold' leaves the render waiting for a review in the studio"
            ),
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=None,
            help="the storyboard's seed (default 0): the same inputs and seed"
            " plan the same video; another seed, other choices",
        )
        parser.add_argument(
            "--json", action="store_true", help="print the manifest as JSON"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **opts: Any) -> None:
        # The terminal shows the progress bar; per-task log lines would break it.
        logging.getLogger("celery").setLevel(logging.WARNING)
        for path in [
            *opts["image"],
            opts["audio"],
            *([opts["script"]] if opts["script"] else []),
        ]:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        if opts["duration"] <= 0:
            raise CommandError("--duration must be positive")
        try:
            check_style(opts["style"])
        except UnknownStyle as exc:
            raise CommandError(str(exc)) from exc
        output: Path = opts["output"]
        if output.suffix.lower().lstrip(".") != opts["format"]:
            output = output.with_suffix(f".{opts['format']}")

        owner = self._owner(opts["user"])
        project = Project.objects.create(
            owner=owner,
            title=opts["title"] or opts["audio"].stem,
            style=opts["style"],
            target_duration=opts["duration"],
            preset=opts["preset"],
            output_format=opts["format"],
            review_policy=opts["review"],
        )
        try:
            for image in opts["image"]:
                add_asset_from_path(project, image, expected_kind="image")
            add_asset_from_path(project, opts["audio"], expected_kind="audio")
            if opts["script"]:
                add_asset_from_path(project, opts["script"], expected_kind="document")
        except UploadRejected as exc:
            project.delete()
            raise CommandError(str(exc)) from exc

        started = time.monotonic()
        bar = (
            None
            if opts["quiet"]
            else tqdm(
                total=100,
                unit="%",
                file=sys.stderr,
                bar_format="{l_bar}{bar}| {elapsed}",
            )
        )

        def show(payload: ProgressPayload) -> None:
            if bar is None:
                return
            bar.n = round(payload["progress"] * 100)
            bar.set_description(f"{payload['stage']:<8}", refresh=False)
            bar.refresh()

        add_listener(show)
        try:
            seed = {"seed": opts["seed"]} if opts["seed"] is not None else {}
            job = render_now(project, **seed)
        except RenderNotReady as exc:
            raise CommandError(str(exc)) from exc
        finally:
            remove_listener(show)
            if bar is not None:
                bar.close()
        wall = time.monotonic() - started

        if job.status == job.Status.REVIEW:
            raise CommandError(
                f"render #{job.pk} waits for a review: {job.message}; decide in the"
                " studio's review queue (/reviews/)"
            )
        if job.status != job.Status.SUCCEEDED:
            raise CommandError(f"render failed: {job.error or job.status}")
        render = job.render
        output.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(render.file, "rb") as src, output.open("wb") as dst:
            shutil.copyfileobj(src, dst, length=1024 * 1024)
        manifest = {
            **render.manifest,
            "file": str(output),
            "wall_seconds": round(wall, 3),
        }
        if opts["json"]:
            self.stdout.write(json.dumps(manifest, indent=2))
        else:
            scenes = len(render.manifest["scenes"])
            size = f"{render.width}x{render.height} {render.output_format}"
            self.stdout.write(
                f"Rendered {render.duration:.2f} s, {scenes} scenes, {size} "
                f"in {wall:.1f} s: {output}"
            )
            self.stdout.write(_character_line(render.manifest))

    def _owner(self, username: str):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user


def _character_line(manifest: dict[str, Any]) -> str:
    character = manifest.get("character")
    if not character:
        return "No character found in the photos: no scene was checked."
    checked = [s for s in manifest["scenes"] if "consistency" in s]
    flagged = [s["index"] for s in checked if s["consistency"]["review"] == "flagged"]
    line = f"Character {character['name']!r}: {len(checked)} scenes checked"
    if flagged:
        return line + f", scenes {flagged} failed every attempt (see the manifest)"
    return line + ", all passed"
