"""Which engine makes a scene, and on which queue it runs.

A scene names a model (``Scene.model``, a ``media_jobs.ModelSpec`` key); the
spec names its engine and its GPU memory need. The built-in ``photo`` engine
and the ``diffusers`` engine (image and video models from the model store,
kept loaded in this process's model cache) are always here; a studio adds
engines with ``STUDIO_SCENE_ENGINES`` ("module:attribute" of an object with
``name``, ``version`` and ``render``).
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from pathlib import Path

from django.conf import settings

from media_jobs.heartbeat import MODEL_CACHE
from media_jobs.models import ModelSpec
from media_jobs.queues import queue_for_vram
from workers.scenes import ModelRef, SceneEngine
from workers.scenes.diffusion import DiffusionEngine
from workers.scenes.photo import PhotoEngine

DEFAULT_MODEL = "photo"

# Registry entries of the engines that need no weights: present in every
# studio (made on first use), and editable in the admin like any other.
BUILTIN_MODELS = {
    "photo": {
        "name": "Photo motion (the still, moved and graded by the renderer)",
        "kind": ModelSpec.Kind.SCENE,
        "engine": "photo",
        "revision": "1",
        "vram_gb": 0.0,
    }
}


class UnknownModel(ValueError):
    """A scene asks for a model the registry does not have, or cannot run."""


def _load(reference: str) -> SceneEngine:
    module, _, attribute = reference.partition(":")
    if not module or not attribute:
        raise ValueError(
            f"STUDIO_SCENE_ENGINES entry {reference!r} is not 'module:attribute'"
        )
    engine = getattr(import_module(module), attribute)
    return engine() if isinstance(engine, type) else engine


@cache
def engines() -> dict[str, SceneEngine]:
    found: dict[str, SceneEngine] = {
        "photo": PhotoEngine(),
        "diffusers": DiffusionEngine(MODEL_CACHE),
    }
    for reference in settings.STUDIO_SCENE_ENGINES:
        engine = _load(reference)
        found[engine.name] = engine
    return found


def model_spec(key: str) -> ModelSpec:
    """The enabled registry entry of ``key`` whose engine this studio has."""
    spec = ModelSpec.objects.filter(key=key).first()
    if spec is None and key in BUILTIN_MODELS:
        spec, _ = ModelSpec.objects.get_or_create(key=key, defaults=BUILTIN_MODELS[key])
    if spec is None:
        raise UnknownModel(f"the model {key!r} is not in the registry")
    if not spec.enabled:
        raise UnknownModel(f"the model {key!r} is disabled in the registry")
    if spec.engine not in engines():
        raise UnknownModel(
            f"the model {key!r} needs the scene engine {spec.engine!r}, which this"
            " studio does not have"
        )
    return spec


def engine_for(spec: ModelSpec) -> SceneEngine:
    return engines()[spec.engine]


def model_ref(spec: ModelSpec) -> ModelRef | None:
    """What a model-backed engine needs to find and run ``spec`` in this
    host's model store; None for models without weights there."""
    if spec.location != ModelSpec.Location.LOCAL:
        return None
    return ModelRef(
        key=spec.key,
        task=spec.kind,
        store=Path(settings.STUDIO_MODEL_STORE),
        provider=spec.provider or spec.engine,
        params=dict(spec.params),
        cpu=spec.cpu,
    )


def queue_for_model(key: str) -> str:
    return queue_for_vram(model_spec(key).vram_gb)


def preload_model(key: str) -> None:
    """Load the scene model ``key`` into this process's model cache (a
    worker's STUDIO_PRELOAD_MODELS): ValueError for one that has nothing to
    load, ModelMissing for one not installed here."""
    spec = model_spec(key)
    engine = engine_for(spec)
    ref = model_ref(spec)
    preload = getattr(engine, "preload", None)
    if ref is None or preload is None:
        raise ValueError(f"the model {key!r} has no weights to preload")
    preload(ref)
