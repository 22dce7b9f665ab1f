"""Choosing and loading a face provider by name. A provider's models take
seconds to load, so each process keeps the ones it has loaded."""

from __future__ import annotations

import threading
from pathlib import Path

from .base import FaceModelMissing, FaceProvider

DEFAULT_PROVIDER = "dlib"
PROVIDERS = ("dlib", "insightface")
# The model registry's key of the InsightFace pack, and its folder in the
# model store.
INSIGHTFACE_KEY = "insightface-buffalo-l"

_loaded: dict[tuple[str, str], FaceProvider] = {}
_lock = threading.Lock()


def load_provider(name: str, model_store: Path | None = None) -> FaceProvider:
    """The provider ``name``, loaded once per process; ``model_store`` is
    where downloaded models live (STUDIO_MODEL_STORE), needed by every
    provider but the embedded dlib one."""
    if name not in PROVIDERS:
        raise ValueError(
            f"unknown face provider {name!r}; choose one of: {', '.join(PROVIDERS)}"
        )
    key = (name, str(model_store or ""))
    with _lock:
        if key not in _loaded:
            _loaded[key] = _make(name, model_store)
        return _loaded[key]


def provider_class(name: str) -> type:
    """The provider's class, for its constants (threshold, version) without
    loading its models."""
    if name == "dlib":
        from .dlib_provider import DlibProvider

        return DlibProvider
    if name == "insightface":
        from .insightface_provider import InsightFaceProvider

        return InsightFaceProvider
    raise ValueError(f"unknown face provider {name!r}")


def make_provider(name: str, model_store: Path | None) -> FaceProvider:
    """A new provider ``name`` (no cache: a worker's model cache keeps it)."""
    return _make(name, model_store)


def _make(name: str, model_store: Path | None) -> FaceProvider:
    if name == "dlib":
        from .dlib_provider import DlibProvider

        return DlibProvider()
    if model_store is None:
        raise FaceModelMissing(
            "InsightFace needs a model store (STUDIO_MODEL_STORE); then run"
            f" `python manage.py models pull {INSIGHTFACE_KEY}`"
        )
    from .insightface_provider import InsightFaceProvider

    return InsightFaceProvider(Path(model_store) / INSIGHTFACE_KEY)
