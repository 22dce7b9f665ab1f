"""Where a model runs, given how much GPU memory it needs and how much is free.

A GPU worker asks `choose_policy` before loading a pipeline and hands the result
to `apply_plan`, so one card serves models bigger than itself (slower, through
diffusers' CPU offload) instead of failing with an out-of-memory error mid-render.
torch is imported lazily: the CPU worker and the tests run without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

GiB = 1024**3

# Below this share of free memory left over after the model, the VAE decode of a
# long clip is what tips the card over, so slicing it is cheap insurance.
_SLICING_MARGIN = 0.25


class Policy(StrEnum):
    GPU = "gpu"
    MODEL_OFFLOAD = "model_cpu_offload"
    SEQUENTIAL_OFFLOAD = "sequential_cpu_offload"
    CPU = "cpu"


@dataclass(frozen=True)
class MemoryPlan:
    policy: Policy
    vae_tiling: bool
    vae_slicing: bool
    reason: str


class NoDeviceError(RuntimeError):
    """The model cannot run here: no GPU, or too little GPU memory even with
    offload, and the CPU is not allowed for it."""


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def choose_policy(
    need_bytes: int,
    free_bytes: int | None,
    *,
    cpu_allowed: bool = True,
    offload_factor: float = 0.35,
    sequential_factor: float = 0.12,
    headroom: float = 0.10,
) -> MemoryPlan:
    """The cheapest way to run a model of `need_bytes` on a card with `free_bytes`
    free (None: no GPU). `headroom` is the share of free memory kept back for
    activations and the CUDA context; the factors are the share of the model that
    stays on the GPU under model-level and sequential (layer-level) offload."""
    if need_bytes < 0:
        raise ValueError(f"need_bytes must not be negative, got {need_bytes}")
    if free_bytes is None:
        if cpu_allowed:
            return MemoryPlan(Policy.CPU, False, False, "no GPU on this worker")
        raise NoDeviceError(
            "this model needs a GPU; this worker has none (send the task to a "
            "gpu queue or allow the CPU for this model)"
        )
    budget = max(free_bytes, 0) * (1 - headroom)
    if need_bytes <= budget:
        margin = (free_bytes - need_bytes) / free_bytes if free_bytes else 0.0
        slicing = margin < _SLICING_MARGIN
        reason = f"fits on the GPU: needs {_gib(need_bytes)} of {_gib(free_bytes)} free"
        if slicing:
            reason += f" ({margin:.0%} spare, VAE slicing on)"
        return MemoryPlan(Policy.GPU, False, slicing, reason)
    if need_bytes * offload_factor <= budget:
        return MemoryPlan(
            Policy.MODEL_OFFLOAD,
            True,
            True,
            f"needs {_gib(need_bytes)}, only {_gib(free_bytes)} free: model CPU "
            f"offload keeps about {_gib(need_bytes * offload_factor)} on the GPU",
        )
    if need_bytes * sequential_factor <= budget:
        return MemoryPlan(
            Policy.SEQUENTIAL_OFFLOAD,
            True,
            True,
            f"needs {_gib(need_bytes)}, only {_gib(free_bytes)} free: sequential "
            f"CPU offload keeps about {_gib(need_bytes * sequential_factor)} on "
            "the GPU (slow)",
        )
    if cpu_allowed:
        return MemoryPlan(
            Policy.CPU,
            False,
            False,
            f"needs {_gib(need_bytes)}, only {_gib(free_bytes)} free even with "
            "offload: running on the CPU",
        )
    raise NoDeviceError(
        f"this model needs a GPU with more memory: it needs {_gib(need_bytes)} "
        f"({_gib(need_bytes * sequential_factor)} even with sequential offload), "
        f"and only {_gib(free_bytes)} is free"
    )


def device_memory(device: int = 0) -> tuple[int, int] | None:
    """(free, total) bytes of CUDA device `device`, or None where torch is not
    installed or sees no CUDA device."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


def apply_plan(pipeline: object, plan: MemoryPlan, device: str = "cuda") -> object:
    """Place a diffusers-style pipeline as `plan` says. Duck-typed so that any
    object with the same methods works; VAE tiling and slicing are skipped on
    pipelines that have no VAE methods (audio and speech models)."""
    # diffusers' `to()` moves the pipeline in place, so the same object is
    # handed back whatever the policy. The offload hooks take the device so a
    # worker pinned to "cuda:1" offloads onto its own card.
    target: Any = pipeline
    if plan.policy is Policy.GPU:
        target.to(device)
    elif plan.policy is Policy.MODEL_OFFLOAD:
        target.enable_model_cpu_offload(device=device)
    elif plan.policy is Policy.SEQUENTIAL_OFFLOAD:
        target.enable_sequential_cpu_offload(device=device)
    else:
        target.to("cpu")
    if plan.vae_tiling and hasattr(target, "enable_vae_tiling"):
        target.enable_vae_tiling()
    if plan.vae_slicing and hasattr(target, "enable_vae_slicing"):
        target.enable_vae_slicing()
    return pipeline
