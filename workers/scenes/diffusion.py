"""The diffusion engine: scenes made by a diffusers model from the model store.

An image model (SDXL, FLUX ...) makes the scene's still, which the renderer
moves like a photo; a video model (LTX-Video, SVD, Wan ...) animates the
scene's photo into a clip. The pipeline comes from the worker's ModelCache,
so consecutive scenes of one model load it once, and its memory plan (full
GPU, offload, CPU where the registry allows) is the cache's.

Decisions:
- An image model starts from the scene's photo (image-to-image) with
  ``denoise`` (registry param, default 0.75) of the photo repainted, so the
  character's pose and framing carry into the generated still; ``denoise: 1``
  paints from the prompt alone.
- Generation runs at the registry's pixel area (``width`` x ``height``) in
  the video's aspect, rounded to the model's multiple; the renderer scales.
- A video model makes as many frames as the scene lasts at its own ``fps``,
  at most ``max_frames`` (rounded to its ``frame_step``: LTX needs 8k+1,
  Wan 4k+1). A scene longer than that plays the clip slower, so it spans the
  scene rather than freezing on its last frame.
- Seeds drive a CPU generator: the same seed gives the same noise on every
  card and under every offload plan.

torch and diffusers are imported when a scene is made: the web app and the
CPU workers load this module without them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from workers.assembly.encode import video_args
from workers.assembly.ffmpeg import run_ffmpeg
from workers.modelstore.cache import ModelCache
from workers.modelstore.loaders import cache_load

from . import ModelRef, SceneOutput, SceneRequest

PREVIEW_WIDTH = 320
DEFAULT_DENOISE = 0.75
DEFAULT_AREA = 1024 * 1024
# The clip is an intermediate the renderer re-encodes: near-lossless.
CLIP_CRF = 12
TASKS = ("image", "video")


def _fit(
    photo: Image.Image, size: tuple[int, int], focus: tuple[float, float]
) -> Image.Image:
    """``photo`` cropped to the aspect of ``size`` around ``focus`` (fractions
    of its width and height), then scaled to ``size``."""
    width, height = photo.size
    target = size[0] / size[1]
    if width / height > target:
        crop_w, crop_h = round(height * target), height
    else:
        crop_w, crop_h = width, round(width / target)
    left = min(max(round(focus[0] * width - crop_w / 2), 0), width - crop_w)
    top = min(max(round(focus[1] * height - crop_h / 2), 0), height - crop_h)
    box = (left, top, left + crop_w, top + crop_h)
    return photo.crop(box).resize(size, Image.Resampling.LANCZOS)


def generation_size(
    width: int, height: int, params: Mapping[str, Any]
) -> tuple[int, int]:
    """The size the model paints at: the registry's pixel area
    (``params`` width x height) in the aspect of the video, each side a
    multiple of ``params["multiple"]`` (16 by default)."""
    area = int(params.get("width", 1024)) * int(params.get("height", 1024))
    multiple = int(params.get("multiple", 16))
    if area <= 0 or multiple <= 0:
        raise ValueError("the model's width, height and multiple must be positive")
    aspect = width / height
    gen_w = max(multiple, round(math.sqrt(area * aspect) / multiple) * multiple)
    gen_h = max(multiple, round(math.sqrt(area / aspect) / multiple) * multiple)
    return gen_w, gen_h


def frame_count(seconds: float, params: Mapping[str, Any]) -> int:
    """How many frames the video model makes for a scene of ``seconds``: the
    scene at the model's fps, at most ``max_frames``, and of the form
    ``frame_step * k + 1`` when the model needs it."""
    fps = float(params.get("fps", 24))
    most = int(params.get("max_frames", 25))
    step = int(params.get("frame_step", 1))
    if fps <= 0 or most < 1 or step < 1:
        raise ValueError("the model's fps, max_frames and frame_step must be positive")
    wanted = min(max(1, math.ceil(seconds * fps)), most)
    if step == 1:
        return wanted
    k = math.ceil((wanted - 1) / step)
    if step * k + 1 > most:
        k = (most - 1) // step
    return step * k + 1


def _accepted(call: Callable[..., Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``wanted`` that the pipeline's ``__call__`` takes:
    pipelines differ (SVD has no prompt, FLUX no negative prompt)."""
    names = inspect.signature(call).parameters
    return {k: v for k, v in wanted.items() if k in names and v is not None}


def _save_preview(picture: Image.Image, out_dir: Path) -> Path:
    height = max(2, round(PREVIEW_WIDTH * picture.height / picture.width / 2) * 2)
    preview = out_dir / "preview.jpg"
    picture.convert("RGB").resize((PREVIEW_WIDTH, height)).save(preview, quality=85)
    return preview


def _as_pictures(frames: Any) -> list[Image.Image]:
    """A pipeline's frames (PIL images, or floats in [0, 1] as an array or
    tensor of frames x height x width x 3) as PIL images."""
    import numpy as np

    if isinstance(frames, list) and frames and isinstance(frames[0], Image.Image):
        return frames
    array = np.asarray(frames.cpu() if hasattr(frames, "cpu") else frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"the model returned frames of shape {array.shape}")
    array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    return [Image.fromarray(frame) for frame in array]


class DiffusionEngine:
    """Scenes made by a diffusers pipeline kept in ``cache``."""

    name = "diffusers"
    version = "diffusers-1"
    seeded = True

    def __init__(self, cache: ModelCache, device: str | None = None) -> None:
        self.cache = cache
        self.device = device

    def _device(self) -> str:
        if self.device is not None:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def render(self, request: SceneRequest) -> SceneOutput:
        model = request.model
        if model is None or model.task not in TASKS:
            raise ValueError(
                "the diffusion engine needs an image or video model, got"
                f" {model.task if model else 'none'!r}"
            )
        request.report(0.0, f"scene {request.index}: loading {model.key}")
        entry = cache_load(
            model.store, model.key, model.provider, model.params,
            task=model.task, device=self._device(),
        )  # fmt: skip
        with self.cache.using(
            model.key, entry.load, need_bytes=entry.need_bytes,
            cpu_allowed=model.cpu, signature=entry.signature,
        ) as pipe:  # fmt: skip
            if model.task == "image":
                return self._still(pipe, request, model)
            return self._clip(pipe, request, model)

    def _keyframes(
        self,
        pipe: Any,
        request: SceneRequest,
        model: ModelRef,
        first: Image.Image,
        size: tuple[int, int],
        count: int,
    ) -> dict[str, Any]:
        """The arguments that make the clip end on the scene's end keyframe:
        LTX-Video's conditions on the first and last frame, or a pipeline's
        ``last_image``. A model that takes neither is refused rather than
        quietly ignoring the keyframe the user chose."""
        assert request.end_image is not None
        with Image.open(request.end_image) as opened:
            end = ImageOps.exif_transpose(opened).convert("RGB")
        last = _fit(end, size, (0.5, 0.5))
        names = inspect.signature(pipe.__call__).parameters
        if "conditions" in names:
            from diffusers.pipelines.ltx.pipeline_ltx_condition import (
                LTXVideoCondition,
            )

            return {
                "image": None,
                "conditions": [
                    LTXVideoCondition(image=first, frame_index=0),
                    LTXVideoCondition(image=last, frame_index=count - 1),
                ],
            }
        if "last_image" in names:
            return {"last_image": last}
        raise ValueError(
            f"the model {model.key!r} cannot end a clip on a keyframe; choose"
            " another model for this scene, or no end keyframe"
        )

    def _progress(self, request: SceneRequest, steps: int, what: str) -> Any:
        def on_step_end(_pipe: Any, step: int, _t: Any, kwargs: dict) -> dict:
            done = min(1.0, (step + 1) / max(steps, 1))
            request.report(0.05 + 0.85 * done, f"scene {request.index}: {what}")
            return kwargs

        return on_step_end

    def _generator(self, seed: int) -> Any:
        import torch

        return torch.Generator("cpu").manual_seed(int(seed))

    def _still(self, pipe: Any, request: SceneRequest, model: ModelRef) -> SceneOutput:
        params = model.params
        size = generation_size(request.width, request.height, params)
        steps = int(params.get("steps", 30))
        denoise = float(params.get("denoise", DEFAULT_DENOISE))
        if not 0.0 < denoise <= 1.0:
            raise ValueError(f"the model's denoise must be in (0, 1], got {denoise}")
        wanted: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "num_inference_steps": steps,
            "guidance_scale": params.get("guidance"),
            # Image-to-image pipelines that take a size (FLUX) otherwise
            # paint their square default; the others use the photo's.
            "width": size[0],
            "height": size[1],
            "generator": self._generator(request.seed),
            "output_type": "pil",
        }
        if denoise < 1.0:
            from diffusers import AutoPipelineForImage2Image

            with Image.open(request.image) as opened:
                photo = ImageOps.exif_transpose(opened).convert("RGB")
            runner = AutoPipelineForImage2Image.from_pipe(pipe)
            # Image-to-image runs the last ``denoise`` share of the steps:
            # at least one, however light the touch.
            total = max(steps, math.ceil(1 / denoise))
            wanted |= {
                "image": _fit(photo, size, request.focus),
                "strength": denoise,
                "num_inference_steps": total,
            }
            steps = max(1, int(total * denoise))
        else:
            runner = pipe
        wanted["callback_on_step_end"] = self._progress(request, steps, "painting")
        result = runner(**_accepted(runner.__call__, wanted))
        picture = result.images[0]
        still = request.out_dir / "still.png"
        picture.save(still)
        request.report(0.95, f"scene {request.index}: preview")
        return SceneOutput(preview=_save_preview(picture, request.out_dir), still=still)

    def _clip(self, pipe: Any, request: SceneRequest, model: ModelRef) -> SceneOutput:
        params = model.params
        size = generation_size(request.width, request.height, params)
        seconds = request.frames / request.fps
        count = frame_count(seconds, params)
        model_fps = float(params.get("fps", 24))
        steps = int(params.get("steps", 25))
        with Image.open(request.image) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
        first = _fit(photo, size, request.focus)
        wanted: dict[str, Any] = {
            "image": first,
            "prompt": request.prompt or None,
            "negative_prompt": request.negative_prompt or None,
            "width": size[0],
            "height": size[1],
            "num_frames": count,
            "num_inference_steps": steps,
            "guidance_scale": params.get("guidance"),
            "motion_bucket_id": params.get("motion_bucket_id"),
            "fps": params.get("fps"),  # SVD's frame-rate conditioning
            "frame_rate": model_fps,  # LTX-Video's
            "generator": self._generator(request.seed),
            "output_type": "pil",
            "callback_on_step_end": self._progress(request, steps, "animating"),
        }
        if request.end_image is not None:
            wanted |= self._keyframes(pipe, request, model, first, size, count)
        result = pipe(**_accepted(pipe.__call__, wanted))
        pictures = _as_pictures(result.frames[0])
        request.report(0.92, f"scene {request.index}: writing {len(pictures)} frames")
        frames_dir = request.out_dir / "frames"
        frames_dir.mkdir()
        for n, picture in enumerate(pictures):
            picture.convert("RGB").save(frames_dir / f"{n:05d}.png")
        # Slower than the model's rate when the scene outlasts the clip.
        clip_fps = min(model_fps, len(pictures) / seconds) if seconds > 0 else model_fps
        clip = request.out_dir / "clip.mp4"
        run_ffmpeg(
            [
                "-protocol_whitelist", "file",
                "-f", "image2", "-framerate", f"{clip_fps:.6f}", "-start_number", "0",
                "-i", str((frames_dir / "%05d.png").absolute()),
                *video_args("mp4", CLIP_CRF, max(1, round(clip_fps))),
            ],
            output=clip,
        )  # fmt: skip
        preview = _save_preview(pictures[len(pictures) // 3], request.out_dir)
        return SceneOutput(preview=preview, clip=clip)
