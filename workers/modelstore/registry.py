"""The studio's planned models, read from ``registry.yaml`` beside this
module and checked, as plain values; the web app copies them into its model
registry (``media_jobs.ModelSpec``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REGISTRY_FILE = Path(__file__).resolve().parent / "registry.yaml"
TASKS = (
    "image", "video", "music", "speech", "transcription", "emotion", "faces",
    "llm", "scene",
)  # fmt: skip
PROVIDERS = (
    "diffusers", "transformers", "coqui", "insightface", "dlib", "espeak",
    "motion", "llama_cpp", "api",
)  # fmt: skip
LOCATIONS = ("local", "api", "embedded")
BUNDLES = ("essential", "recommended", "all")
_KEYS = {
    "name", "task", "provider", "location", "engine", "repo", "revision",
    "files", "vram_gb", "cpu", "params", "quality", "speed", "api_key",
    "bundle", "licence", "enabled",
}  # fmt: skip


class RegistryError(ValueError):
    """An entry of the registry file is wrong; the message names it."""


@dataclass(frozen=True)
class PlannedModel:
    key: str
    name: str
    task: str
    provider: str
    location: str
    engine: str = ""  # the scene engine that runs it, when it makes scenes
    repo: str = ""
    revision: str = ""
    files: tuple[str, ...] = ()
    vram_gb: float = 0.0
    cpu: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    quality: int = 5
    speed: int = 5
    api_key: str = ""
    bundle: str = "all"
    licence: str = ""
    enabled: bool = True

    def in_bundle(self, bundle: str) -> bool:
        """essential ⊂ recommended ⊂ all."""
        return BUNDLES.index(self.bundle) <= BUNDLES.index(bundle)


def _choice(key: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise RegistryError(
            f"{key}.{name}: {value!r} is not one of {', '.join(choices)}"
        )
    return str(value)


def _rating(key: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
        raise RegistryError(f"{key}.{name}: a whole number from 1 to 10")
    return value


def planned_model(key: str, data: Mapping[str, Any]) -> PlannedModel:
    """One entry; RegistryError naming the key and field."""
    if not isinstance(data, Mapping):
        raise RegistryError(f"{key}: expected a mapping")
    extra = sorted(set(data) - _KEYS)
    if extra:
        raise RegistryError(f"{key}: unknown fields {', '.join(extra)}")
    location = _choice(key, "location", data.get("location"), LOCATIONS)
    repo = str(data.get("repo") or "")
    files = data.get("files") or []
    if location == "local":
        if not repo or "/" not in repo:
            raise RegistryError(f"{key}.repo: a local model names its owner/repo")
        if not data.get("revision"):
            raise RegistryError(f"{key}.revision: pin the revision to pull")
        if not files:
            raise RegistryError(f"{key}.files: say which files to fetch")
    if location == "api" and not data.get("api_key"):
        raise RegistryError(f"{key}.api_key: name the setting holding its key")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise RegistryError(f"{key}.files: a list of patterns")
    vram = data.get("vram_gb", 0)
    if isinstance(vram, bool) or not isinstance(vram, int | float) or vram < 0:
        raise RegistryError(f"{key}.vram_gb: GPU memory in GB, 0 or more")
    params = data.get("params") or {}
    if not isinstance(params, Mapping):
        raise RegistryError(f"{key}.params: a mapping")
    provider = _choice(key, "provider", data.get("provider"), PROVIDERS)
    return PlannedModel(
        key=key,
        name=str(data.get("name") or key),
        task=_choice(key, "task", data.get("task"), TASKS),
        provider=provider,
        location=location,
        engine=str(data.get("engine") or ("photo" if provider == "motion" else "")),
        repo=repo,
        revision=str(data.get("revision") or ("1" if location != "local" else "")),
        files=tuple(files),
        vram_gb=float(vram),
        cpu=bool(data.get("cpu", False)),
        params=dict(params),
        quality=_rating(key, "quality", data.get("quality", 5)),
        speed=_rating(key, "speed", data.get("speed", 5)),
        api_key=str(data.get("api_key") or ""),
        bundle=_choice(key, "bundle", data.get("bundle", "all"), BUNDLES),
        licence=str(data.get("licence") or ""),
        enabled=bool(data.get("enabled", True)),
    )


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, PlannedModel]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path.name}: {exc}") from exc
    if not isinstance(data, Mapping) or not data:
        raise RegistryError(f"{path.name}: expected a mapping of models")
    models = {str(k): planned_model(str(k), v) for k, v in data.items()}
    for model in models.values():
        _check_base(model, models)
    return models


def _check_base(model: PlannedModel, models: Mapping[str, PlannedModel]) -> None:
    """A single-file or GGUF model runs inside another entry's pipeline,
    which must be a local diffusers model of the registry."""
    params = model.params
    if not (params.get("single_file") or params.get("gguf")):
        return
    base = models.get(str(params.get("base") or ""))
    if base is None:
        raise RegistryError(
            f"{model.key}.params.base: name the registry's diffusers pipeline"
            " this single file runs inside"
        )
    if base.provider != "diffusers" or base.location != "local":
        raise RegistryError(
            f"{model.key}.params.base: {base.key} is not a local diffusers model"
        )


@cache
def planned_models() -> dict[str, PlannedModel]:
    return load_registry()
