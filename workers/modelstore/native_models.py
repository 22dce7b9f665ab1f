"""Loading the model store's models that run outside torch's model classes:
GGUF language models through llama.cpp (``llama-cpp-python``) and Coqui's
XTTS v2 voice cloner (``coqui-tts``).

Neither package is in the project's requirements: llama-cpp-python compiles
llama.cpp when pip installs it (a long build, which must match the host's
CUDA), and Coqui TTS pins its own versions of torch's neighbours. A worker
that serves these models installs them itself; one that does not gets a
StoreError naming the pip package. The model's files are checked before the
import, so a worker missing both hears about the files first: they are what
``manage.py models pull`` repairs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.modelstore.memory import MemoryPlan, Policy, device_memory
from workers.modelstore.store import StoreError

# XTTS's load_checkpoint reads these from the checkpoint folder; dvae.pth and
# mel_stats.pth are for training only and speakers_xtts.pth is optional.
XTTS_FILES = ("config.json", "model.pth", "vocab.json")
XTTS_SAMPLE_RATE = 24000
_DEFAULT_CONTEXT = 4096
# Under offload, the share of the free GPU memory llama.cpp's layers may take:
# the KV cache and scratch buffers need the rest.
_GPU_FILL = 0.80


# -- llama.cpp ---------------------------------------------------------------------


@dataclass
class LlamaChat:
    """A GGUF chat model in llama.cpp; ``llm`` is the ``llama_cpp.Llama``."""

    llm: Any
    context: int
    gpu_layers: int

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int = 1024,
        temperature: float = 0.7,
        seed: int = 0,
    ) -> str:
        """The assistant's reply to OpenAI-style ``messages`` ({"role",
        "content"} each), as the storyboard's LLM stage sends them."""
        reply = self.llm.create_chat_completion(
            messages=[dict(m) for m in messages],
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        return str(reply["choices"][0]["message"]["content"] or "")


def find_gguf(folder: Path) -> Path:
    """The one ``.gguf`` file of ``folder``: none or several is a StoreError,
    since llama.cpp would otherwise load whichever came first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"cannot load a GGUF model: {folder} is not a folder")
    found = sorted(p for p in folder.rglob("*.gguf") if p.is_file())
    if not found:
        raise StoreError(
            f"{folder} holds no .gguf file; check the registry entry's files and"
            f" run: python manage.py models pull {folder.name}"
        )
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found)
        raise StoreError(
            f"{folder} holds {len(found)} .gguf files ({names}); keep one, or narrow"
            " the registry entry's files to a single quantisation"
        )
    return found[0]


def gguf_block_count(path: Path) -> int | None:
    """The number of transformer layers a GGUF file says it has, or None
    where its metadata does not say (or the gguf package is missing)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        return None
    try:
        reader = GGUFReader(str(path))
        arch_field = reader.get_field("general.architecture")
        if arch_field is None:
            return None
        arch = arch_field.contents()
        count_field = reader.get_field(f"{arch}.block_count")
        return None if count_field is None else int(count_field.contents())
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise StoreError(f"{path} is not a readable GGUF file ({exc})") from exc


def gpu_layers(
    plan: MemoryPlan, block_count: int | None, model_bytes: int, free_bytes: int | None
) -> int:
    """How many layers llama.cpp should put on the GPU: all (-1) on a GPU plan,
    none on a CPU plan, and under offload the share of the layers that fits in
    most of the free memory (llama.cpp runs the others on the CPU)."""
    if plan.policy is Policy.GPU:
        return -1
    if plan.policy is Policy.CPU or not free_bytes or not block_count:
        return 0
    if model_bytes <= 0:
        return -1
    share = free_bytes * _GPU_FILL / model_bytes
    return max(0, min(block_count, math.floor(block_count * share)))


def load_llama_cpp(
    folder: Path, plan: MemoryPlan, *, params: Mapping[str, Any] | None = None
) -> LlamaChat:
    """The single GGUF model in ``folder`` in llama.cpp, with the context
    length of ``params["context"]`` and its layers placed as ``plan`` says
    (``params["gpu_layers"]`` overrides the count)."""
    params = dict(params or {})
    path = find_gguf(folder)
    context = int(params.get("context", _DEFAULT_CONTEXT))
    if context < 1:
        raise ValueError(f"context must be a positive token count, got {context}")
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise StoreError(
            "llama.cpp is not installed on this worker: pip install"
            " llama-cpp-python (built with CUDA for a GPU worker:"
            ' CMAKE_ARGS="-DGGML_CUDA=on")'
        ) from exc
    if "gpu_layers" in params:
        layers = int(params["gpu_layers"])
    else:
        memory = device_memory()
        free = memory[0] if memory is not None else None
        layers = gpu_layers(plan, gguf_block_count(path), path.stat().st_size, free)
    try:
        llm = Llama(
            model_path=str(path), n_ctx=context, n_gpu_layers=layers, verbose=False
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise StoreError(
            f"llama.cpp could not load {path} ({exc}); check it with: python"
            f" manage.py models verify {Path(folder).name}"
        ) from exc
    return LlamaChat(llm, context, layers)


# -- Coqui XTTS ----------------------------------------------------------------------


@dataclass
class VoiceCloner:
    """XTTS v2: speech in the voice of a few seconds of reference audio."""

    model: Any
    sample_rate: int = XTTS_SAMPLE_RATE

    def speak(
        self,
        text: str,
        references: Sequence[Path],
        *,
        language: str = "en",
        seed: int = 0,
    ) -> tuple[np.ndarray, int]:
        """``text`` said in the voice of the ``references`` (audio files):
        (samples (n,) float32, sample_rate)."""
        import torch

        if not text.strip():
            raise ValueError("there is no text to speak")
        if not references:
            raise ValueError("XTTS needs at least one reference recording")
        latent, speaker = self.model.get_conditioning_latents(
            audio_path=[str(p) for p in references]
        )
        torch.manual_seed(seed)
        out = self.model.inference(text, language, latent, speaker)
        wav = out["wav"]
        samples = wav.cpu().numpy() if hasattr(wav, "cpu") else np.asarray(wav)
        return np.asarray(samples, dtype=np.float32).reshape(-1), self.sample_rate


def load_coqui(
    folder: Path,
    plan: MemoryPlan,
    *,
    device: str = "cuda",
    params: Mapping[str, Any] | None = None,
) -> VoiceCloner:
    """Coqui's XTTS v2 from ``folder`` (its ``config.json``, ``model.pth`` and
    ``vocab.json``), on ``device`` unless ``plan`` is for the CPU. XTTS has no
    offload of its own, so an offload plan runs it on the CPU rather than
    fail on a card without room for it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"cannot load XTTS: {folder} is not a folder")
    missing = [name for name in XTTS_FILES if not (folder / name).is_file()]
    if missing:
        raise StoreError(
            f"{folder} is not an XTTS v2 model: it lacks {', '.join(missing)};"
            f" run: python manage.py models pull {folder.name}"
        )
    try:
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts
    except ImportError as exc:
        raise StoreError(
            "Coqui TTS is not installed on this worker: pip install coqui-tts"
            " (the maintained fork that provides the TTS package)"
        ) from exc
    try:
        config = XttsConfig()
        config.load_json(str(folder / "config.json"))
        model = Xtts.init_from_config(config)
        model.load_checkpoint(config, checkpoint_dir=str(folder), eval=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise StoreError(
            f"XTTS could not be loaded from {folder} ({exc}); check its files"
            f" with: python manage.py models verify {folder.name}"
        ) from exc
    model.to(device if plan.policy is Policy.GPU else "cpu")
    rate = int((params or {}).get("sample_rate", XTTS_SAMPLE_RATE))
    return VoiceCloner(model, rate)
