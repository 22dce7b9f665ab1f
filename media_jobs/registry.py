"""The model registry's rows from the studio's plan
(``workers/modelstore/registry.yaml``), and what the model store on this
host holds of each."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from workers.modelstore.cache import ModelCache
from workers.modelstore.loaders import cache_load
from workers.modelstore.registry import PlannedModel, planned_models
from workers.modelstore.store import Installed, StoreError, installed, pull

from .models import ModelSpec

KINDS = {
    "image": ModelSpec.Kind.IMAGE,
    "video": ModelSpec.Kind.VIDEO,
    "music": ModelSpec.Kind.MUSIC,
    "speech": ModelSpec.Kind.SPEECH,
    "transcription": ModelSpec.Kind.TRANSCRIPTION,
    "emotion": ModelSpec.Kind.EMOTION,
    "faces": ModelSpec.Kind.FACES,
    "llm": ModelSpec.Kind.LLM,
    "scene": ModelSpec.Kind.SCENE,
}
COMMIT = re.compile(r"[0-9a-f]{40}")
# What an operator sets in the admin and a sync leaves alone.
OPERATOR_FIELDS = ("enabled", "revision")
# What says which outputs a model made (cache entries and scenes name the
# key): never changed on an existing row, as in the admin.
IDENTITY_FIELDS = ("kind", "engine")
API_KEY_SETTING = re.compile(r"STUDIO_[A-Z0-9_]+_API_KEY")


def spec_fields(planned: PlannedModel) -> dict[str, Any]:
    return {
        "name": planned.name[:200],
        "kind": KINDS[planned.task],
        "engine": planned.engine or planned.provider,
        "revision": planned.revision,
        "vram_gb": planned.vram_gb,
        "enabled": planned.enabled,
        "provider": planned.provider,
        "location": planned.location,
        "repo": planned.repo,
        "files": list(planned.files),
        "cpu": planned.cpu,
        "params": dict(planned.params),
        "quality": planned.quality,
        "speed": planned.speed,
        "api_key_setting": planned.api_key,
        "bundle": planned.bundle,
        "licence": planned.licence[:200],
    }


def sync_models(model: Any = ModelSpec, *, reset: bool = False) -> dict[str, list[str]]:
    """Write the plan's models into the registry: new ones are added; known
    ones take the plan's description but keep what the operator set
    (enabled, revision) unless ``reset``. ``model`` lets a data migration
    pass its historical model. Returns {"added": [...], "updated": [...]}."""
    done: dict[str, list[str]] = {"added": [], "updated": []}
    for key, planned in planned_models().items():
        fields = spec_fields(planned)
        row = model.objects.filter(key=key).first()
        if row is None:
            model.objects.create(key=key, **fields)
            done["added"].append(key)
            continue
        keep = IDENTITY_FIELDS + (() if reset else OPERATOR_FIELDS)
        changed = {k: v for k, v in fields.items() if k not in keep}
        if any(getattr(row, k) != v for k, v in changed.items()):
            model.objects.filter(pk=row.pk).update(**changed)
            done["updated"].append(key)
    return done


def store_path() -> Path:
    return Path(settings.STUDIO_MODEL_STORE)


# The providers whose models tasks take from a worker's model cache (the scene
# engines'); the face models have preloaders of their own.
PRELOADED_PROVIDERS = ("diffusers",)


def load_into_cache(key: str, cache: ModelCache) -> object:
    """The local model ``key`` loaded by its provider from this host's store
    into ``cache`` under its key, as the scene engines load it (what a
    worker's STUDIO_PRELOAD_MODELS does). A ValueError for a key the registry
    lacks or a model without weights in the store; a ModelMissing naming the
    pull command for one not installed here."""
    spec = ModelSpec.objects.filter(key=key).first()
    if spec is None:
        raise ValueError(f"the model {key!r} is not in the registry")
    if spec.location != ModelSpec.Location.LOCAL:
        raise ValueError(f"the model {key!r} has no weights to preload")
    if spec.provider not in PRELOADED_PROVIDERS:
        # Loaded, it would hold memory until evicted: no task takes it yet.
        raise ValueError(
            f"the model {key!r} ({spec.provider}) is not used by any task of"
            " this studio yet, so it is not preloaded"
        )
    entry = cache_load(store_path(), key, spec.provider, spec.params, task=spec.kind)
    return cache.get(
        key, entry.load, need_bytes=entry.need_bytes, cpu_allowed=spec.cpu,
        signature=entry.signature,
    )  # fmt: skip


def api_key_present(spec: ModelSpec) -> bool:
    """An API model can be used once the setting it names holds a key (only
    ``STUDIO_*_API_KEY`` settings count, so a row cannot point elsewhere)."""
    name = spec.api_key_setting
    if not API_KEY_SETTING.fullmatch(name or ""):
        return False
    return bool(getattr(settings, name, ""))


def record_revision(spec: ModelSpec, pulled: Installed) -> None:
    """A registry entry naming a branch or tag takes the commit the pull
    resolved it to, so every host pulls that same commit from now on and
    cached outputs name what made them."""
    if pulled.revision and not COMMIT.fullmatch(spec.revision):
        ModelSpec.objects.filter(pk=spec.pk, revision=spec.revision).update(
            revision=pulled.revision
        )


def state(spec: ModelSpec) -> str:
    """What the admin and ``models list`` show: installed, missing or
    damaged (a local model in this host's store), key set or no key (an API
    model), embedded."""
    if spec.location == ModelSpec.Location.API:
        return "key set" if api_key_present(spec) else "no key"
    if spec.location == ModelSpec.Location.EMBEDDED:
        return "embedded"
    try:
        if installed(store_path(), spec.key):
            return "installed"
    except StoreError:  # a damaged manifest: pull or import again
        return "damaged"
    workers = _live_workers_holding(spec.key)
    if workers:
        return f"on {workers} worker{'s' if workers > 1 else ''}"
    return "missing"


def _live_workers_holding(key: str) -> int:
    """How many live workers report ``key`` in their own store."""
    from .heartbeat import live_heartbeats

    rows = live_heartbeats().values_list("installed", flat=True)
    return sum(1 for keys in rows if key in keys)


def pull_spec(spec: ModelSpec, on_progress: Callable[[int, int], None]) -> Installed:
    """Pull ``spec``'s files into this host's store from the configured hub
    (``STUDIO_HF_ENDPOINT``, ``STUDIO_HF_TOKEN``); StoreError says why not."""
    pulled = pull(
        store_path(),
        spec.key,
        repo_id=spec.repo,
        revision=spec.revision,
        allow_patterns=spec.files or None,
        token=settings.STUDIO_HF_TOKEN or None,
        endpoint=settings.STUDIO_HF_ENDPOINT or None,
        progress=False,
        on_progress=on_progress,
    )
    record_revision(spec, pulled)
    return pulled
