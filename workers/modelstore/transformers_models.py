"""Loading the model store's transformers models (music, speech, transcription,
speech emotion) into small runnable objects.

Each task gets a wrapper with one plain method that takes and returns numpy
audio or text, so the Celery task that calls it needs to know nothing about
processors, token rates or devices::

    folder = require(store, "whisper-medium").folder
    transcriber = load_transformers(folder, "transcription", plan)
    text = transcriber.transcribe(samples, 44100)

Everything is read from the model's folder alone (``local_files_only``): a
render host may have no network, and a half-copied folder must fail here with
a StoreError rather than start a download. Audio arrays follow
``workers.audio.decode``: float32, shape (n,) for mono and (n, channels)
otherwise.

torch and transformers are imported inside the functions, as in
``loaders.py``: the CPU worker and the web app run without them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from workers.modelstore.memory import MemoryPlan, Policy
from workers.modelstore.store import StoreError

TASKS = ("transcription", "music", "speech", "emotion")
_DTYPES = ("auto", "float16", "bfloat16", "float32")

# The model types whose wrapper below knows how to drive them. Emotion takes
# any audio classifier transformers knows, as they share one interface.
_MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "transcription": ("whisper",),
    "music": ("musicgen", "musicgen_melody"),
    "speech": ("bark",),
}

# Whisper's encoder sees 30 s at a time; longer audio goes through its
# sequential long-form decoding, which needs the features unpadded.
_WHISPER_WINDOW_S = 30.0
# The share of free GPU memory device_map may fill, leaving the rest for
# activations and the CUDA context (as memory.choose_policy's headroom).
_GPU_FILL = 0.90

_LOAD_ERRORS = (OSError, ValueError, KeyError, AttributeError, RuntimeError, TypeError)


# -- the runnable objects --------------------------------------------------------


@dataclass
class Transcriber:
    """Speech to text with a Whisper model."""

    model: Any
    processor: Any
    sample_rate: int

    def transcribe(
        self, samples: np.ndarray, sample_rate: int, *, language: str | None = None
    ) -> str:
        """The text spoken in ``samples`` (mono or (n, channels), any rate).
        ``language`` (e.g. "en") skips Whisper's language detection."""
        import torch

        audio = _mono_at(samples, sample_rate, self.sample_rate)
        if audio.size == 0:
            return ""
        if audio.shape[0] > _WHISPER_WINDOW_S * self.sample_rate:
            features = self.processor(
                audio,
                sampling_rate=self.sample_rate,
                return_tensors="pt",
                truncation=False,
                padding="longest",
                return_attention_mask=True,
            )
        else:
            features = self.processor(
                audio, sampling_rate=self.sample_rate, return_tensors="pt"
            )
        kwargs: dict[str, Any] = {}
        if "attention_mask" in features:
            kwargs["attention_mask"] = features["attention_mask"].to(self.model.device)
        if language:
            kwargs["language"] = language
        with torch.inference_mode():
            ids = self.model.generate(
                features["input_features"].to(self.model.device, self.model.dtype),
                **kwargs,
            )
        text = self.processor.batch_decode(ids, skip_special_tokens=True)[0]
        return str(text).strip()


@dataclass
class MusicGenerator:
    """Text (and, for melody models, a tune) to music with a MusicGen model."""

    model: Any
    processor: Any
    sample_rate: int
    max_seconds: float
    melody: bool

    def generate(
        self,
        prompt: str,
        seconds: float,
        seed: int,
        *,
        guidance_scale: float = 3.0,
        melody: tuple[np.ndarray, int] | None = None,
    ) -> tuple[np.ndarray, int]:
        """``seconds`` of music for ``prompt``: (samples, sample_rate), samples
        (n,) for a mono model and (n, channels) for a stereo one. The same
        seed gives the same music on the same machine. ``melody`` is
        (samples, rate) of a tune to follow, for melody models only."""
        import torch

        if not 0 < seconds <= self.max_seconds:
            raise ValueError(
                f"seconds must be in (0, {self.max_seconds:g}] for this model,"
                f" got {seconds}"
            )
        if melody is not None and not self.melody:
            raise ValueError("this MusicGen model does not take a melody")
        inputs: dict[str, Any] = {"text": [prompt], "padding": True}
        if melody is not None:
            tune, tune_rate = melody
            rate = self.processor.feature_extractor.sampling_rate
            inputs["audio"] = _mono_at(tune, tune_rate, rate)
            inputs["sampling_rate"] = rate
        encoded = self.processor(**inputs, return_tensors="pt").to(self.model.device)
        if "input_features" in encoded:
            encoded["input_features"] = encoded["input_features"].to(self.model.dtype)
        audio_config = self.model.config.audio_encoder
        # The codebooks are generated with a delay of one step each, so the
        # last (codebooks - 1) steps yield no audio: ask for that much more.
        steps = math.ceil(seconds * audio_config.frame_rate)
        steps += self.model.decoder.config.num_codebooks - 1
        torch.manual_seed(seed)
        with torch.inference_mode():
            audio = self.model.generate(
                **encoded,
                do_sample=True,
                guidance_scale=guidance_scale,
                max_new_tokens=steps,
            )
        frames = audio[0].float().cpu().numpy().T  # (n, channels)
        frames = frames[: round(seconds * self.sample_rate)]
        return _frames_out(frames), self.sample_rate


@dataclass
class SpeechSynthesizer:
    """Text to speech with a Bark model."""

    model: Any
    processor: Any
    sample_rate: int
    semantic_rate: float

    @property
    def voices(self) -> list[str]:
        """The speaker presets the model folder holds (e.g. "v2/en_speaker_6")."""
        embeddings = self.processor.speaker_embeddings or {}
        return sorted(name for name in embeddings if name != "repo_or_path")

    def speak(
        self,
        text: str,
        seed: int,
        *,
        voice: str | None = None,
        max_seconds: float | None = None,
    ) -> tuple[np.ndarray, int]:
        """``text`` spoken: (samples (n,), sample_rate). ``voice`` is one of
        ``voices`` (None: a random speaker, fixed by the seed);
        ``max_seconds`` stops the speech early (Bark says at most about 14 s
        per call)."""
        import torch

        if not text.strip():
            raise ValueError("there is no text to speak")
        if voice is not None and voice not in self.voices:
            known = ", ".join(self.voices[:8]) or "none in this model's folder"
            raise ValueError(f"unknown voice {voice!r}; known voices: {known}")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        inputs = self.processor(text, voice_preset=voice, return_tensors="pt")
        kwargs: dict[str, Any] = {"do_sample": True}
        if max_seconds is not None:
            kwargs["semantic_max_new_tokens"] = max(
                1, math.ceil(max_seconds * self.semantic_rate)
            )
        torch.manual_seed(seed)
        with torch.inference_mode():
            audio = self.model.generate(**inputs.to(self.model.device), **kwargs)
        samples = audio[0].float().cpu().numpy().astype(np.float32)
        if max_seconds is not None:
            samples = samples[: round(max_seconds * self.sample_rate)]
        return samples, self.sample_rate


@dataclass
class EmotionClassifier:
    """The emotion in a voice, with an audio classifier (wav2vec2 and kin)."""

    model: Any
    feature_extractor: Any
    sample_rate: int

    @property
    def labels(self) -> list[str]:
        id2label = self.model.config.id2label
        return [str(id2label[i]) for i in sorted(id2label)]

    def classify(self, samples: np.ndarray, sample_rate: int) -> dict[str, float]:
        """The probability of each of the model's labels for ``samples``."""
        import torch

        audio = _mono_at(samples, sample_rate, self.sample_rate)
        if audio.size == 0:
            raise ValueError("there is no audio to classify")
        inputs = self.feature_extractor(
            audio, sampling_rate=self.sample_rate, return_tensors="pt"
        ).to(self.model.device)
        inputs["input_values"] = inputs["input_values"].to(self.model.dtype)
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        probabilities = logits[0].float().softmax(dim=-1).cpu().numpy()
        return {
            label: float(p)
            for label, p in zip(self.labels, probabilities.tolist(), strict=True)
        }


TransformersModel = Transcriber | MusicGenerator | SpeechSynthesizer | EmotionClassifier


# -- loading ----------------------------------------------------------------------


def load_transformers(
    folder: Path,
    task: str,
    plan: MemoryPlan,
    *,
    device: str = "cuda",
    dtype: str = "auto",
    params: Mapping[str, Any] | None = None,
) -> TransformersModel:
    """The model in ``folder`` (a transformers ``save_pretrained`` folder),
    ready for ``task`` (transcription | music | speech | emotion), in ``dtype``
    ("auto": float16 when the GPU runs it, float32 on the CPU) and placed as
    ``plan`` says on ``device``.

    ``params`` are the registry's: ``max_seconds`` bounds music requests, and
    ``channels`` and ``melody`` must match the MusicGen model found.
    An offload plan lets accelerate place a model's layers across the card and
    RAM (``device_map="auto"``); Bark uses its own per-sub-model offload.
    A folder that holds no model, or a model that does not do ``task``, is a
    StoreError; an unknown task or dtype is a ValueError.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    params = dict(params or {})
    folder = Path(folder)
    if plan.policy is not Policy.CPU and device.split(":")[0] == "cpu":
        # Offloading to the CPU from the CPU is just the CPU, in float32.
        plan = replace(plan, policy=Policy.CPU)
    model_type = _model_type(folder)
    try:
        import torch  # noqa: F401  (fails early and clearly without torch)
        import transformers
    except ImportError as exc:
        raise StoreError(
            "torch and transformers are not installed on this worker (install"
            " requirements/gpu.txt)"
        ) from exc
    _check_task(folder, task, model_type)

    if task == "transcription":
        model = _load_model(
            transformers.AutoModelForSpeechSeq2Seq, folder, plan, device, dtype
        )
        processor = _load_processor(transformers.AutoProcessor, folder)
        return Transcriber(
            model, processor, int(processor.feature_extractor.sampling_rate)
        )
    if task == "music":
        melody = model_type == "musicgen_melody"
        cls = (
            transformers.MusicgenMelodyForConditionalGeneration
            if melody
            else transformers.MusicgenForConditionalGeneration
        )
        model = _load_model(cls, folder, plan, device, dtype)
        _check_music_params(folder, params, model, melody)
        processor = _load_processor(transformers.AutoProcessor, folder)
        max_seconds = float(params.get("max_seconds", 30))
        rate = int(model.config.audio_encoder.sampling_rate)
        return MusicGenerator(model, processor, rate, max_seconds, melody)
    if task == "speech":
        # Bark is four models run one after the other; its own offload keeps
        # one of them on the GPU at a time, which suits both offload plans.
        model = _load_model(
            transformers.BarkModel, folder, plan, device, dtype, device_map=False
        )
        if plan.policy in (Policy.MODEL_OFFLOAD, Policy.SEQUENTIAL_OFFLOAD):
            _require_cuda(device)
            model.enable_cpu_offload(accelerator_id=_gpu_index(device))
        processor = _load_processor(transformers.BarkProcessor, folder)
        semantic = model.generation_config.semantic_config
        semantic_rate = float(
            semantic["semantic_rate_hz"]
            if isinstance(semantic, Mapping)
            else semantic.semantic_rate_hz
        )
        rate = int(model.generation_config.sample_rate)
        return SpeechSynthesizer(model, processor, rate, semantic_rate)
    model = _load_model(
        transformers.AutoModelForAudioClassification, folder, plan, device, dtype
    )
    extractor = _load_processor(transformers.AutoFeatureExtractor, folder)
    return EmotionClassifier(model, extractor, int(extractor.sampling_rate))


def _model_type(folder: Path) -> str:
    config = folder / "config.json"
    if not folder.is_dir():
        raise StoreError(f"cannot load a transformers model: {folder} is not a folder")
    if not config.is_file():
        raise StoreError(
            f"{folder} is not a transformers model: it has no config.json; check"
            f" its files with: python manage.py models verify {folder.name}"
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {config}: {exc}") from exc
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if not isinstance(model_type, str) or not model_type:
        raise StoreError(f"{config} does not say which model it is (no model_type)")
    return model_type


def _check_task(folder: Path, task: str, model_type: str) -> None:
    if task == "emotion":
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
        )

        allowed = tuple(MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES)
    else:
        allowed = _MODEL_TYPES[task]
    if model_type not in allowed:
        raise StoreError(
            f"the model in {folder} is a {model_type} model, which cannot do"
            f" {task} here (that needs one of: {', '.join(allowed)}); check the"
            " registry entry's task and repo"
        )


def _check_music_params(
    folder: Path, params: Mapping[str, Any], model: Any, melody: bool
) -> None:
    """The registry's channels and melody must describe the model pulled:
    a mono model under a stereo entry means the wrong repo was installed."""
    channels = int(model.config.decoder.audio_channels)
    wanted = params.get("channels")
    if wanted is not None and int(wanted) != channels:
        raise StoreError(
            f"the registry says {wanted} channel(s), but the MusicGen model in"
            f" {folder} makes {channels}; check the registry entry's repo"
        )
    if params.get("melody") and not melody:
        raise StoreError(
            f"the registry says this is a melody model, but the MusicGen model in"
            f" {folder} takes no melody; check the registry entry's repo"
        )


def _torch_dtype(dtype: str, plan: MemoryPlan) -> Any:
    import torch

    if dtype == "auto":
        # Half precision wherever the GPU does the work, offload included;
        # many CPU kernels have no float16, so the CPU gets float32.
        return torch.float32 if plan.policy is Policy.CPU else torch.float16
    return getattr(torch, dtype)


def _gpu_index(device: str) -> int:
    import torch

    index = torch.device(device).index
    return 0 if index is None else int(index)


def _require_cuda(device: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise StoreError(
            f"the memory plan offloads to a GPU ({device}), but this worker has no"
            " CUDA device"
        )


def _max_memory(device: str) -> dict[int | str, int]:
    """What device_map="auto" may use: most of the free memory of the worker's
    own card (not the other cards of the host) and the free RAM."""
    import psutil
    import torch

    _require_cuda(device)
    index = _gpu_index(device)
    free, _total = torch.cuda.mem_get_info(index)
    return {index: int(free * _GPU_FILL), "cpu": int(psutil.virtual_memory().available)}


def _load_model(
    cls: Any,
    folder: Path,
    plan: MemoryPlan,
    device: str,
    dtype: str,
    *,
    device_map: bool = True,
) -> Any:
    kwargs: dict[str, Any] = {
        "dtype": _torch_dtype(dtype, plan),
        "local_files_only": True,
    }
    offload = plan.policy in (Policy.MODEL_OFFLOAD, Policy.SEQUENTIAL_OFFLOAD)
    if offload and device_map:
        # One transformers model cannot be swapped onto the card piece by
        # piece as a diffusers pipeline is (its largest part would not fit),
        # so both offload plans let accelerate fill the card with as many
        # layers as fit and stream the rest from RAM as they run.
        kwargs["device_map"] = "auto"
        kwargs["max_memory"] = _max_memory(device)
    try:
        model = cls.from_pretrained(str(folder), **kwargs)
    except _LOAD_ERRORS as exc:
        raise StoreError(
            f"the model in {folder} could not be loaded ({exc}); check its files"
            f" with: python manage.py models verify {folder.name}"
        ) from exc
    model.eval()
    if plan.policy is Policy.GPU:
        model.to(device)
    elif plan.policy is Policy.CPU:
        model.to("cpu")
    return model


def _load_processor(cls: Any, folder: Path) -> Any:
    try:
        return cls.from_pretrained(str(folder), local_files_only=True)
    except ImportError as exc:
        # Some feature extractors need an optional library (MusicGen melody's
        # chroma needs torchaudio); transformers' message names it.
        detail = " ".join(str(exc).split())
        raise StoreError(
            f"the model in {folder} needs a library this worker lacks: {detail}"
        ) from exc
    except _LOAD_ERRORS as exc:
        raise StoreError(
            f"the tokenizer or feature extractor in {folder} could not be loaded"
            f" ({exc}); check its files with: python manage.py models verify"
            f" {folder.name}"
        ) from exc


# -- audio ----------------------------------------------------------------------


def _mono_at(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` as float32 mono at ``target`` Hz (the model's own rate)."""
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1, dtype=np.float32)
    elif audio.ndim != 1:
        raise ValueError(f"samples must be (n,) or (n, channels), got {audio.shape}")
    if rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {rate}")
    if rate != target and audio.size:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=target)
    return np.ascontiguousarray(audio, dtype=np.float32)


def _frames_out(frames: np.ndarray) -> np.ndarray:
    """(n, channels) model output in the project's layout: (n,) when mono."""
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    return frames[:, 0].copy() if frames.shape[1] == 1 else frames
