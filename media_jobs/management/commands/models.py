"""``manage.py models list|sync|pull|import|verify``: the model registry and
this host's model store (``STUDIO_MODEL_STORE``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from media_jobs.models import ModelSpec
from media_jobs.queues import NoQueueForModel, queue_for_vram
from media_jobs.registry import pull_spec, state, store_path, sync_models
from workers.modelstore.store import (
    StoreError,
    import_dir,
    installed,
    list_installed,
    verify,
)

BUNDLES = [value for value, _ in ModelSpec.Bundle.choices]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _queue(spec: ModelSpec) -> str:
    try:
        return queue_for_vram(spec.vram_gb)
    except NoQueueForModel:
        return "none fits"


class Command(BaseCommand):
    help = (
        "The studio's models: list them with their state, size, GPU memory and"
        " queue; sync the registry from workers/modelstore/registry.yaml; pull a"
        " model (or a bundle) into the model store; import files copied by hand"
        " onto an offline host; verify sizes and hashes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="every model, installed or not")
        listing.add_argument("--installed", action="store_true")
        sync = sub.add_parser("sync", help="write the planned models into the registry")
        sync.add_argument(
            "--reset",
            action="store_true",
            help="also overwrite what operators set (enabled, revision)",
        )
        get = sub.add_parser("pull", help="download a model's files (resumes)")
        get.add_argument("key", nargs="?")
        get.add_argument("--bundle", choices=BUNDLES, help="every model of a bundle")
        get.add_argument("--quiet", action="store_true", help="no progress bar")
        take = sub.add_parser("import", help="register files copied by hand")
        take.add_argument("key")
        take.add_argument("dir", type=Path)
        check = sub.add_parser("verify", help="check sizes and hashes")
        check.add_argument("key", nargs="?")

    def handle(self, *args: Any, **opts: Any) -> None:
        action = opts["action"]
        if action == "sync":
            done = sync_models(reset=opts["reset"])
            self.stdout.write(
                f"{len(done['added'])} added, {len(done['updated'])} updated"
            )
            return
        getattr(self, f"_{action}")(opts)

    def _spec(self, key: str) -> ModelSpec:
        spec = ModelSpec.objects.filter(key=key).first()
        if spec is None:
            raise CommandError(
                f"no model {key!r} in the registry; `manage.py models list` shows them"
            )
        return spec

    def _list(self, opts: dict[str, Any]) -> None:
        store = store_path()
        sizes = {m.key: m.size for m in list_installed(store)}
        self.stdout.write(
            f"{'model':<30} {'state':<10} {'size':>9} {'VRAM':>6} {'queue':<9} bundle"
        )
        for spec in ModelSpec.objects.all():
            what = state(spec)
            if opts["installed"] and what != "installed":
                continue
            size = _size(sizes[spec.key]) if spec.key in sizes else "-"
            flag = "" if spec.enabled else " (disabled)"
            self.stdout.write(
                f"{spec.key:<30} {what:<10} {size:>9} {spec.vram_gb:>4g}GB"
                f" {_queue(spec):<9} {spec.bundle}{flag}"
            )

    def _pull(self, opts: dict[str, Any]) -> None:
        if bool(opts["key"]) == bool(opts["bundle"]):
            raise CommandError("give a model KEY or --bundle, not both")
        if opts["key"]:
            specs = [self._spec(opts["key"])]
        else:
            specs = [
                s
                for s in ModelSpec.objects.filter(location=ModelSpec.Location.LOCAL)
                if ModelSpec.Bundle.values.index(s.bundle)
                <= ModelSpec.Bundle.values.index(opts["bundle"])
            ]
        for spec in specs:
            self._pull_one(spec, quiet=opts["quiet"])

    def _pull_one(self, spec: ModelSpec, *, quiet: bool) -> None:
        if spec.location != ModelSpec.Location.LOCAL:
            raise CommandError(
                f"{spec.key} has no weights to pull ({spec.get_location_display()})"
            )
        bar = None if quiet else tqdm(
            total=0, unit="B", unit_scale=True, desc=spec.key, file=sys.stderr
        )  # fmt: skip

        def on_progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            result = pull_spec(spec, on_progress)
        except StoreError as exc:
            raise CommandError(f"{spec.key}: {exc}") from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(
            f"{spec.key}: {len(result.files)} files, {_size(result.size)},"
            f" revision {result.revision}"
        )

    def _import(self, opts: dict[str, Any]) -> None:
        spec = self._spec(opts["key"])
        try:
            result = import_dir(
                store_path(),
                spec.key,
                opts["dir"],
                allow_patterns=spec.files or None,
                revision=spec.revision or "imported",
            )
        except StoreError as exc:
            raise CommandError(f"{spec.key}: {exc}") from exc
        self.stdout.write(
            f"{spec.key}: {len(result.files)} files imported, {_size(result.size)}"
        )

    def _verify(self, opts: dict[str, Any]) -> None:
        store = store_path()
        # Every model folder, so a damaged manifest counts as a failure too.
        keys = (
            [opts["key"]]
            if opts["key"]
            else sorted(
                p.name
                for p in (store.iterdir() if store.is_dir() else [])
                if p.is_dir() and not p.name.startswith(".")
            )
        )
        bad = 0
        for key in keys:
            try:
                found = installed(store, key)
            except StoreError as exc:
                self.stdout.write(f"{key}: {exc}")
                bad += 1
                continue
            if found is None:
                if opts["key"]:
                    raise CommandError(
                        f"{key} is not in the model store; run: python manage.py"
                        f" models pull {key}"
                    )
                self.stdout.write(f"{key}: no manifest (pull or import it again)")
                bad += 1
                continue
            problems = verify(store, key)
            if not problems:
                self.stdout.write(f"{key}: sound")
                continue
            bad += 1
            for p in problems:
                self.stdout.write(f"{key}: {p.path}: {p.kind} ({p.detail})")
        if bad:
            raise CommandError(f"{bad} model(s) failed verification")
