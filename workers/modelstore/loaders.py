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

A model whose registry params say ``single_file: true`` (a ``.safetensors`` or
``.ckpt`` checkpoint) or ``gguf: true`` (GGUF-quantized weights) is one
component only, usually the transformer or UNet; ``base: KEY`` names the
installed diffusers pipeline that supplies the rest (VAE, text encoders,
tokenizers, scheduler) and the component's config. ``component:`` picks which
component the file replaces (default: the base's ``transformer``, else its
``unet``) and ``file:`` which file, when the model's folder holds several.

torch and diffusers are imported inside the functions: the CPU worker, the web
app and the tests that do not load models run without them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.modelstore.memory import MemoryPlan, Policy, apply_plan
from workers.modelstore.native_models import load_coqui, load_llama_cpp
from workers.modelstore.store import Installed, StoreError, require
from workers.modelstore.transformers_models import load_transformers

# What counts as weights when estimating how much memory a model needs.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pth")

_DTYPES = ("auto", "float16", "bfloat16", "float32")
# What an FP8 checkpoint's weights may stay in while they wait to run.
_STORAGE_DTYPES = ("float8_e4m3fn", "float8_e5m2")
# The files from_single_file reads: safetensors, and the pickled .ckpt that
# diffusers opens with torch.load(weights_only=True), so no code runs.
_CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
_GGUF_SUFFIXES = (".gguf",)
# Which component a single file replaces when the params do not say: the
# denoiser, named "transformer" in DiT pipelines and "unet" in older ones.
_DEFAULT_COMPONENTS = ("transformer", "unet")


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


def _check_dtype(dtype: str) -> None:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")


def _import_diffusers() -> Any:
    try:
        import diffusers
    except ImportError as exc:
        raise StoreError(
            "diffusers is not installed on this worker (install requirements/gpu.txt)"
        ) from exc
    return diffusers


# A component's weights saved as a variant: "model.fp16.safetensors",
# "diffusion_pytorch_model.fp16-00001-of-00002.safetensors" (a shard).
_VARIANT_FILE = re.compile(
    r"^[A-Za-z_]+\.(?P<variant>[A-Za-z][A-Za-z0-9_]*)(?:-\d{5}-of-\d{5})?"
    r"\.(?:safetensors|bin)$"
)


def weights_variant(folder: Path) -> str | None:
    """The variant the pipeline in ``folder`` was pulled in ("fp16" when its
    weights are ``*.fp16.safetensors``, as the registry fetches SDXL and
    SVD), which from_pretrained must be told; diffusers falls back to the
    plain weights of a component that has no such file. None when no
    component has a variant, or when they name different ones."""
    variants = set()
    for path in Path(folder).glob("*/*"):
        found = _VARIANT_FILE.match(path.name)
        if found:
            variants.add(found["variant"])
    return variants.pop() if len(variants) == 1 else None


def _pipeline_from_folder(
    folder: Path, torch_dtype: Any, **components: object
) -> object:
    """``DiffusionPipeline.from_pretrained`` on a store folder, offline, with
    ``components`` (already loaded) used instead of the folder's own."""
    diffusers = _import_diffusers()
    try:
        return diffusers.DiffusionPipeline.from_pretrained(
            str(folder),
            dtype=torch_dtype,
            local_files_only=True,
            variant=weights_variant(folder),
            **components,
        )
    except (OSError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise StoreError(
            f"the diffusers pipeline in {folder} could not be loaded ({exc});"
            f" check its files with: python manage.py models verify {folder.name}"
        ) from exc


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
    _check_dtype(dtype)
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"cannot load a diffusers pipeline: {folder} is not a folder")
    if not (folder / "model_index.json").is_file():
        raise StoreError(
            f"{folder} is not a diffusers pipeline: it has no model_index.json"
            " (a single-file checkpoint needs single_file in the registry params,"
            " or pull the repo's diffusers layout)"
        )
    pipeline = _pipeline_from_folder(folder, _torch_dtype(dtype, plan))
    target = "cpu" if plan.policy is Policy.CPU else device
    return apply_plan(pipeline, plan, target)


def _single_file_params(
    key: str, params: Mapping[str, Any]
) -> tuple[str, str | None, str | None]:
    """``(base, component, file)`` from a single-file model's registry params,
    checked before anything is read, so a registry mistake reads as one."""
    kind = "gguf" if params.get("gguf") else "single_file"
    base = params.get("base")
    if not isinstance(base, str) or not base:
        raise ValueError(
            f"the model '{key}' is a {kind} checkpoint of one component; its"
            " registry params need base: KEY, the installed diffusers pipeline"
            " that supplies the rest (VAE, text encoders, scheduler)"
        )
    if base == key:
        raise ValueError(
            f"the model '{key}' names itself as its base; base must be another"
            " model, a diffusers pipeline"
        )
    found: dict[str, str | None] = {}
    for name in ("component", "file"):
        value = params.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(
                f"the model '{key}' has {name}: {value!r} in its registry params;"
                f" {name} must be a non-empty string"
            )
        found[name] = value
    storage = params.get("storage_dtype")
    if storage is not None and params.get("gguf"):
        raise ValueError(
            f"the model '{key}' is GGUF, already stored quantized: storage_dtype"
            " is for FP8 checkpoints"
        )
    if storage is not None and storage not in _STORAGE_DTYPES:
        raise ValueError(
            f"the model '{key}' has storage_dtype: {storage!r} in its registry"
            f" params; it must be one of {', '.join(_STORAGE_DTYPES)}"
        )
    return base, found["component"], found["file"]


def _checkpoint_file(model: Installed, file: str | None, gguf: bool) -> Path:
    """The one checkpoint file in an installed model's folder: ``file`` when
    given, else the only file with the right suffix."""
    suffixes = _GGUF_SUFFIXES if gguf else _CHECKPOINT_SUFFIXES
    listed = [record.path for record in model.files]
    wanted = "a .gguf file" if gguf else "a .safetensors or .ckpt file"
    if file is not None:
        if file not in listed:
            raise StoreError(
                f"the model '{model.key}' has no file {file!r} (its params say"
                f" file: {file}); it holds: {', '.join(listed) or 'nothing'}"
            )
        if not file.lower().endswith(suffixes):
            raise ValueError(
                f"the model '{model.key}' names file: {file}, which is not {wanted}"
                + ("" if gguf else " (GGUF weights need gguf: true)")
            )
        chosen = file
    else:
        candidates = [path for path in listed if path.lower().endswith(suffixes)]
        if not candidates:
            raise StoreError(
                f"the model '{model.key}' holds no checkpoint: {wanted} was expected"
                f" in {model.folder}, which holds: {', '.join(listed) or 'nothing'}"
            )
        if len(candidates) > 1:
            raise ValueError(
                f"the model '{model.key}' holds {len(candidates)} checkpoints"
                f" ({', '.join(candidates)}); name the one to load with file: in"
                " its registry params"
            )
        chosen = candidates[0]
    path = model.folder / chosen
    if not path.is_file():
        raise StoreError(
            f"the checkpoint {path} is missing; check the model's files with:"
            f" python manage.py models verify {model.key}"
        )
    return path


def _model_index(base: Installed) -> dict[str, Any]:
    path = base.folder / "model_index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(
            f"the base model '{base.key}' is not a diffusers pipeline: it has no"
            " model_index.json (a base must be a model pulled in the diffusers"
            " layout)"
        ) from None
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"cannot read {path} ({exc}); check its files with: python manage.py"
            f" models verify {base.key}"
        ) from exc
    if not isinstance(index, dict):
        raise StoreError(f"{path} is not a diffusers model index")
    return index


def _component_name(
    index: Mapping[str, Any], base_key: str, component: str | None
) -> str:
    """The base's component a single file replaces: ``component`` when given,
    else the base's transformer, else its unet."""
    # model_index.json maps each component to [library, class name], an absent
    # optional one (a safety checker left out) to [null, null]; the other keys
    # (_class_name, _diffusers_version, flags) are not components.
    components = sorted(
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and len(value) == 2
        and value[0] is not None
    )
    if component is None:
        defaults = [name for name in _DEFAULT_COMPONENTS if name in components]
        if not defaults:
            raise ValueError(
                f"the base '{base_key}' has no {' or '.join(_DEFAULT_COMPONENTS)};"
                " say which component the checkpoint is with component: (one of"
                f" {', '.join(components)})"
            )
        return defaults[0]
    if component not in components:
        raise ValueError(
            f"the base '{base_key}' has no component {component!r}; its components"
            f" are: {', '.join(components)}"
        )
    return component


def _component_class(
    diffusers: Any, index: Mapping[str, Any], base_key: str, component: str
) -> Any:
    """The diffusers model class of the base's ``component``, as its
    model_index.json names it; a ValueError when that class cannot be loaded
    from a single file."""
    library, class_name = index[component]
    if library != "diffusers" or not isinstance(class_name, str):
        raise ValueError(
            f"the {component} of '{base_key}' is a {library} {class_name}, which"
            " cannot be loaded from a single file: only diffusers model"
            " components can (a transformer, unet or vae)"
        )
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    # Many classes inherit from_single_file without a key mapping for it and
    # fail inside diffusers; its own table says which ones really load.
    model_class = getattr(diffusers, class_name, None)
    loadable = [getattr(diffusers, name, None) for name in SINGLE_FILE_LOADABLE_CLASSES]
    if not isinstance(model_class, type) or not any(
        isinstance(cls, type) and issubclass(model_class, cls) for cls in loadable
    ):
        raise ValueError(
            f"the {component} of '{base_key}' is a {class_name}, which diffusers"
            f" {diffusers.__version__} cannot load from a single file"
        )
    return model_class


# The registry params that change what load_model builds (the others, such
# as steps or sizes, are read when the model runs).
LOAD_PARAMS = (
    "dtype", "variant", "single_file", "gguf", "base", "component", "file",
    "storage_dtype",
)  # fmt: skip


def cache_signature(store: Path, key: str, params: Mapping[str, Any]) -> str:
    """What a loaded model was built from: the revision installed (and its
    base's, for a single-file model) and the loading params. A model cache
    loads it again when this changes (a new pull, an admin edit)."""
    revisions = [require(store, key).revision]
    base = params.get("base")
    if base and (params.get("single_file") or params.get("gguf")):
        revisions.append(require(store, str(base)).revision)
    loading = {name: params[name] for name in LOAD_PARAMS if name in params}
    return json.dumps([revisions, loading], sort_keys=True)


def load_need_bytes(
    store: Path, key: str, params: Mapping[str, Any] | None = None
) -> int:
    """The memory estimate for ``load_model(store, key, "diffusers", plan,
    params=params)``: the weights of the model's folder, and for a single-file
    or GGUF model its checkpoint plus the base pipeline's weights other than
    the component the checkpoint replaces (the text encoders often outweigh
    the transformer). Missing models and bad params fail as in load_model."""
    params = dict(params or {})
    if not (params.get("single_file") or params.get("gguf")):
        return need_bytes(require(store, key).folder)
    base_key, component, file = _single_file_params(key, params)
    checkpoint = _checkpoint_file(require(store, key), file, bool(params.get("gguf")))
    base = require(store, base_key)
    component = _component_name(_model_index(base), base_key, component)
    replaced = base.folder / component
    kept = need_bytes(base.folder) - (need_bytes(replaced) if replaced.is_dir() else 0)
    return checkpoint.stat().st_size + kept


def _load_single_file(
    store: Path,
    key: str,
    params: Mapping[str, Any],
    plan: MemoryPlan,
    *,
    device: str,
    dtype: str,
) -> object:
    gguf = bool(params.get("gguf"))
    base_key, component, file = _single_file_params(key, params)
    _check_dtype(dtype)
    checkpoint = _checkpoint_file(require(store, key), file, gguf)
    base = require(store, base_key)
    index = _model_index(base)
    component = _component_name(index, base_key, component)
    diffusers = _import_diffusers()
    model_class = _component_class(diffusers, index, base_key, component)
    torch_dtype = _torch_dtype(dtype, plan)

    from diffusers.loaders.single_file_utils import SingleFileComponentError

    extra: dict[str, Any] = {}
    if gguf:
        # The quantized weights stay quantized in memory; each layer
        # dequantizes its weight to the compute dtype when it runs.
        extra["quantization_config"] = diffusers.GGUFQuantizationConfig(
            compute_dtype=torch_dtype
        )
    try:
        # config= a local pipeline folder: the component's config.json is read
        # from base/component, never fetched. A checkpoint already in diffusers'
        # key layout loads as it is; an original-layout one (BFL, LTX, Wan,
        # ComfyUI GGUF) is converted by diffusers' mapping for the class.
        weights = model_class.from_single_file(
            str(checkpoint),
            config=str(base.folder),
            subfolder=component,
            dtype=torch_dtype,
            local_files_only=True,
            **extra,
        )
    except ImportError as exc:
        raise StoreError(
            f"cannot load the checkpoint of '{key}' on this worker ({exc});"
            " install requirements/gpu.txt (GGUF needs its gguf and accelerate)"
        ) from exc
    except (
        OSError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        RuntimeError,
        SingleFileComponentError,
    ) as exc:
        raise StoreError(
            f"the checkpoint {checkpoint.name} of '{key}' could not be loaded as"
            f" the {component} ({model_class.__name__}) of '{base_key}' ({exc});"
            f" check that it is a checkpoint of that model, and its files with:"
            f" python manage.py models verify {key}"
        ) from exc
    storage = params.get("storage_dtype")
    if storage:
        # An FP8 checkpoint (the FLUX merge, Wan 2.1) is upcast as it loads;
        # kept in FP8 and cast up layer by layer as it runs, it needs about
        # its file's size, not twice that.
        import torch

        weights.enable_layerwise_casting(
            storage_dtype=getattr(torch, str(storage)), compute_dtype=torch_dtype
        )
    # A checkpoint that lacks some weights leaves them on the "meta" device
    # (loading starts from empty weights); it would fail only when run.
    missing = [
        name
        for name, tensor in [*weights.named_parameters(), *weights.named_buffers()]
        if tensor.device.type == "meta"
    ]
    if missing:
        raise StoreError(
            f"the checkpoint {checkpoint.name} of '{key}' lacks {len(missing)}"
            f" weight(s) of the {component} of '{base_key}' (e.g."
            f" {', '.join(missing[:3])}); it is not a checkpoint of that model"
        )
    pipeline = _pipeline_from_folder(base.folder, torch_dtype, **{component: weights})
    target = "cpu" if plan.policy is Policy.CPU else device
    return apply_plan(pipeline, plan, target)


# The providers load_model reads from the store.
PROVIDERS = ("diffusers", "transformers", "llama_cpp", "coqui")


def load_model(
    store: Path,
    key: str,
    provider: str,
    plan: MemoryPlan,
    *,
    params: Mapping[str, Any] | None = None,
    device: str = "cuda",
    task: str = "",
) -> object:
    """The model installed as ``key`` in ``store``, loaded by ``provider`` and
    placed as ``plan`` says: a diffusers pipeline, a transformers model ready
    for its ``task`` (transcription, music, speech, emotion), a llama.cpp chat
    model or Coqui's XTTS. A model that is not installed is a ModelMissing
    naming ``python manage.py models pull KEY``; so is a single-file model's
    missing base. A provider this function cannot load, or params that do not
    add up, are a ValueError naming them; files that cannot be loaded are a
    StoreError naming ``python manage.py models verify KEY``."""
    params = dict(params or {})
    dtype = str(params.get("dtype", "auto"))
    if provider == "diffusers":
        if params.get("single_file") or params.get("gguf"):
            return _load_single_file(
                store, key, params, plan, device=device, dtype=dtype
            )
        folder = require(store, key).folder
        return load_diffusers(folder, plan, device=device, dtype=dtype)
    if provider == "transformers":
        folder = require(store, key).folder
        return load_transformers(
            folder, task, plan, device=device, dtype=dtype, params=params
        )
    if provider == "llama_cpp":
        return load_llama_cpp(require(store, key).folder, plan, params=params)
    if provider == "coqui":
        folder = require(store, key).folder
        return load_coqui(folder, plan, device=device, params=params)
    raise ValueError(
        f"load_model cannot load provider {provider!r} (model '{key}'); it loads:"
        f" {', '.join(PROVIDERS)}"
    )


@dataclass(frozen=True)
class CacheLoad:
    """What a ModelCache needs to hold ``key``: how to load it, how much
    memory it needs, and what it is built from (its signature)."""

    load: Callable[[MemoryPlan], object]
    need_bytes: int
    signature: str


def cache_load(
    store: Path,
    key: str,
    provider: str,
    params: Mapping[str, Any],
    *,
    task: str = "",
    device: str = "cuda",
) -> CacheLoad:
    """The one way a worker puts an installed model in its cache, for the
    scene engines and for preloading alike, so both name the same entry.
    A model that is not installed is a ModelMissing naming the pull."""
    params = dict(params)

    def load(plan: MemoryPlan) -> object:
        return load_model(
            store, key, provider, plan, params=params, device=device, task=task
        )

    return CacheLoad(
        load, load_need_bytes(store, key, params), cache_signature(store, key, params)
    )
