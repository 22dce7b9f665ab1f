"""Which engine makes a scene, and on which queue it runs.

A scene names a model (``Scene.model``, a ``media_jobs.ModelSpec`` key); the
spec names its engine and its GPU memory need. The built-in ``photo`` engine,
the ``diffusers`` engine (image and video models from the model store, kept
loaded in this process's model cache) and the ``api`` engine (the cloud
models) are always here; a studio adds
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
from workers.scenes.cloud import CloudEngine
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
        "api": CloudEngine(private_downloads=settings.STUDIO_CLOUD_ALLOW_PRIVATE),
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


# The setting holding each cloud service's base URL (registry params "api").
API_BASE_URLS = {
    "openai-images": "STUDIO_OPENAI_BASE_URL",
    "gemini-image": "STUDIO_GEMINI_BASE_URL",
    "runway": "STUDIO_RUNWAY_BASE_URL",
    "kling": "STUDIO_KLING_BASE_URL",
}


def model_ref(spec: ModelSpec) -> ModelRef | None:
    """What a model-backed engine needs to run ``spec`` here: its folder in
    this host's model store, or for a cloud model the key and base URL this
    host's settings hold; None for models without either (the photo)."""
    common = {
        "key": spec.key,
        "task": spec.kind,
        "store": Path(settings.STUDIO_MODEL_STORE),
        "provider": spec.provider or spec.engine,
        "params": dict(spec.params),
    }
    if spec.location == ModelSpec.Location.LOCAL:
        return ModelRef(**common, cpu=spec.cpu)
    if spec.location == ModelSpec.Location.API:
        service = str(spec.params.get("api", ""))
        base_setting = API_BASE_URLS.get(service, "")
        # The engine names the setting when its key is missing on this host.
        common["params"] = {**spec.params, "key_setting": spec.api_key_setting}
        return ModelRef(
            **common,
            api_key=str(getattr(settings, spec.api_key_setting, "") or "")
            if spec.api_key_setting
            else "",
            base_url=str(getattr(settings, base_setting, "")) if base_setting else "",
        )
    return None


def queue_for_model(key: str) -> str:
    return queue_for_vram(model_spec(key).vram_gb)
