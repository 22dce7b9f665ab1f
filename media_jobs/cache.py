"""Fingerprint caching: an output is stored under the hash of everything that
made it, and a task whose fingerprint is known skips its work.

A fingerprint covers the inputs (content hashes), the parameters, the model's
key and revision and the engine's version. Raising a model's revision in the
registry therefore changes the fingerprints of exactly the outputs that model
made; ``purge_stale`` then drops the entries no fingerprint can reach again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.core.files.storage import default_storage
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from .models import CacheEntry, ModelSpec

logger = logging.getLogger(__name__)


def fingerprint(parts: dict[str, Any]) -> str:
    """The SHA-256 of ``parts`` as canonical JSON."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def lookup(
    key: str, kind: str, *, exists: Callable[[str], bool] | None = None
) -> CacheEntry | None:
    """The entry for ``key`` and count the hit, or None. ``exists`` checks
    that its files are still in storage; an entry that lost a file is
    dropped (a miss), so a removed output is computed again."""
    entry = CacheEntry.objects.filter(fingerprint=key, kind=kind).first()
    if entry is None:
        return None
    if exists is not None and not all(exists(name) for name in entry.files):
        logger.info("cache entry %s lost a file; computing again", key[:12])
        entry.delete()
        return None
    CacheEntry.objects.filter(pk=entry.pk).update(
        hits=F("hits") + 1, last_hit_at=timezone.now()
    )
    return entry


def remember(
    key: str,
    kind: str,
    compute: Callable[[], dict[str, Any]],
    *,
    engine_version: str = "",
) -> tuple[dict[str, Any], bool]:
    """A result without files under ``key``: the stored one, or what
    ``compute()`` returns, stored with the time it took; and whether it was
    computed now."""
    entry = lookup(key, kind)
    if entry is not None:
        return entry.result, False
    started = time.monotonic()
    result = compute()
    store(
        key,
        kind,
        result=result,
        engine_version=engine_version,
        seconds=time.monotonic() - started,
    )
    return result, True


def store(
    key: str,
    kind: str,
    *,
    files: Iterable[str] = (),
    result: dict[str, Any] | None = None,
    model_key: str = "",
    model_revision: str = "",
    engine_version: str = "",
    size: int = 0,
    seconds: float = 0.0,
) -> CacheEntry:
    """Record an output; a second writer of the same key keeps the first."""
    entry, _ = CacheEntry.objects.get_or_create(
        fingerprint=key,
        defaults={
            "kind": kind,
            "files": list(files),
            "result": result or {},
            "model_key": model_key,
            "model_revision": model_revision,
            "engine_version": engine_version,
            "size": size,
            "seconds": round(seconds, 3),
        },
    )
    return entry


def forget_files(names: Iterable[str]) -> int:
    """Drop the entries that point at any of ``names`` (being deleted)."""
    wanted = set(names)
    doomed = [
        entry.pk
        for entry in CacheEntry.objects.all().only("pk", "files")
        if wanted.intersection(entry.files)
    ]
    return CacheEntry.objects.filter(pk__in=doomed).delete()[0]


def stale_entries() -> Any:
    """Entries made by a model revision the registry no longer has."""
    current = Q()
    for key, revision in ModelSpec.objects.values_list("key", "revision"):
        current |= Q(model_key=key, model_revision=revision)
    return CacheEntry.objects.exclude(model_key="").exclude(current)


def purge_stale() -> int:
    """Drop the stale entries and their files; the number of entries dropped.

    Content-addressed files can be shared: one a scene still shows (its
    ``thumbnail`` or ``clip``) or another entry lists is kept."""
    doomed = list(stale_entries().only("pk", "files"))
    if not doomed:
        return 0
    removed = CacheEntry.objects.filter(pk__in=[e.pk for e in doomed]).delete()[0]
    names = {name for entry in doomed for name in entry.files if name}
    if not names:
        return removed
    Scene = apps.get_model("projects", "Scene")  # media_jobs does not import it
    kept = set(
        Scene.objects.filter(thumbnail__in=names).values_list("thumbnail", flat=True)
    )
    kept |= set(Scene.objects.filter(clip__in=names).values_list("clip", flat=True))
    kept |= {
        name
        for entry in CacheEntry.objects.only("files")
        for name in entry.files
        if name in names
    }
    for name in sorted(names - kept):
        try:
            if default_storage.exists(name):
                default_storage.delete(name)
        except OSError:
            logger.warning("could not delete %s of a stale entry", name, exc_info=True)
    return removed


def statistics() -> list[dict[str, Any]]:
    """Per kind: entries, hits, bytes, and the compute time hits saved."""
    rows = (
        CacheEntry.objects.values("kind")
        .annotate(
            entries=Count("id"),
            total_hits=Sum("hits"),
            total_size=Sum("size"),
            saved=Sum(F("hits") * F("seconds")),
        )
        .order_by("kind")
    )
    return [
        {
            "kind": row["kind"],
            "entries": row["entries"],
            "hits": row["total_hits"] or 0,
            "size": row["total_size"] or 0,
            "seconds_saved": round(row["saved"] or 0.0, 1),
        }
        for row in rows
    ]
