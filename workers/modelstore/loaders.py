"""Loading an installed model from the model store into a runnable pipeline.

A GPU worker asks the store for the model's folder (``require``: a missing
model is a ``ModelMissing`` naming ``manage.py models pull KEY``), builds the
pipeline with the provider's own ``from_pretrained`` from that folder alone
(never the network), and places it as the memory plan says
(``memory.apply_plan``). Typically through the worker's ``ModelCache``::

    folder = require(store, key).folder
    pipe = cache.get(
        key,
        lambda plan: load_model(store, key, "diffusers", plan),
        need_bytes=need_bytes(folder),
    )

torch and diffusers are imported inside the functions: the CPU worker, the web
app and the tests that do not load models run without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.modelstore.memory import MemoryPlan, Policy, apply_plan
from workers.modelstore.store import StoreError, require

# What counts as weights when estimating how much memory a model needs.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pth")

_DTYPES = ("auto", "float16", "bfloat16", "float32")
# Registry params that ask for a loading path load_model does not have yet.
_UNSUPPORTED_PARAMS = ("single_file", "gguf")


def need_bytes(folder: Path) -> int:
    """The size of the weight files under ``folder`` (``*.safetensors``,
    ``*.bin``, ``*.gguf``, ``*.pth``), as the estimate of the memory the model
    needs. huggingface_hub's bookkeeping (``.cache``) is not counted."""
    root = Path(folder)
    if not root.is_dir():
        raise StoreError(f"{root} is not a folder of model files")
    total = 0
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] == ".cache":
            continue
        if path.suffix.lower() in WEIGHT_SUFFIXES and path.is_file():
            total += path.stat().st_size
    return total


def _torch_dtype(dtype: str, plan: MemoryPlan) -> Any:
    import torch

    if dtype == "auto":
        # Half precision on a GPU (also under offload: the layers run there);
        # many CPU kernels have no float16, so the CPU gets float32.
        return torch.float32 if plan.policy is Policy.CPU else torch.float16
    return getattr(torch, dtype)


def load_diffusers(
    folder: Path,
    plan: MemoryPlan,
    *,
    device: str = "cuda",
    dtype: str = "auto",
) -> object:
    """A diffusers pipeline from ``folder`` (a saved pipeline: ``model_index.json``
    and one sub-folder per component), in ``dtype`` ("auto": float16 for a GPU
    plan, float32 for a CPU plan), placed as ``plan`` says on ``device`` (a CPU
    plan places it on "cpu" whatever ``device`` says)."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"cannot load a diffusers pipeline: {folder} is not a folder")
    if not (folder / "model_index.json").is_file():
        raise StoreError(
            f"{folder} is not a diffusers pipeline: it has no model_index.json"
            " (a single-file checkpoint needs single_file in the registry params,"
            " or pull the repo's diffusers layout)"
        )
    torch_dtype = _torch_dtype(dtype, plan)
    try:
        from diffusers import DiffusionPipeline
    except ImportError as exc:
        raise StoreError(
            "diffusers is not installed on this worker (install requirements/gpu.txt)"
        ) from exc
    try:
        pipeline = DiffusionPipeline.from_pretrained(
            str(folder), dtype=torch_dtype, local_files_only=True
        )
    except (OSError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise StoreError(
            f"the diffusers pipeline in {folder} could not be loaded ({exc});"
            f" check its files with: python manage.py models verify {folder.name}"
        ) from exc
    target = "cpu" if plan.policy is Policy.CPU else device
    return apply_plan(pipeline, plan, target)


def load_model(
    store: Path,
    key: str,
    provider: str,
    plan: MemoryPlan,
    *,
    params: Mapping[str, Any] | None = None,
    device: str = "cuda",
) -> object:
    """The model installed as ``key`` in ``store``, loaded by ``provider`` and
    placed as ``plan`` says. A model that is not installed is a ModelMissing
    naming ``python manage.py models pull KEY``; a provider this function cannot
    load is a ValueError naming it."""
    params = dict(params or {})
    if provider == "diffusers":
        unsupported = [name for name in _UNSUPPORTED_PARAMS if params.get(name)]
        if unsupported:
            raise ValueError(
                f"the model '{key}' asks for {', '.join(unsupported)} loading,"
                " which load_model does not do yet (only diffusers folders with"
                " model_index.json)"
            )
        folder = require(store, key).folder
        dtype = str(params.get("dtype", "auto"))
        return load_diffusers(folder, plan, device=device, dtype=dtype)
    raise ValueError(
        f"load_model cannot load provider {provider!r} (model '{key}'); it loads:"
        " diffusers"
    )
