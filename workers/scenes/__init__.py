"""Scene engines: what makes one scene's source (a still to move, or a clip).

An engine takes a ``SceneRequest`` (paths and plain parameters) and returns a
``SceneOutput``. The farm runs one engine call per scene task, on the queue
its model's GPU memory picks; the renderer then joins the scenes. Model-backed
engines (image and video generators) add themselves here; ``photo`` is the
one that needs no model: the uploaded photo is the scene's source.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ProgressFn = Callable[[float, str], None]


class SceneStopped(Exception):
    """The engine saw its stop event (the job was cancelled)."""


@dataclass(frozen=True)
class ModelRef:
    """The registry model a model-backed engine runs: where this host's model
    store is, the model's key in it, what it does ("image": a still the
    renderer moves; "video": a clip), which loader reads it, its registry
    params (steps, guidance, size, fps, max_frames ...) and whether it may run
    on the CPU when the card is short; for a cloud model, its key and the
    service's base URL."""

    key: str
    task: str
    store: Path
    provider: str = "diffusers"
    params: Mapping[str, Any] = field(default_factory=dict)
    cpu: bool = False
    # A cloud model: its service's key and base URL (from the settings).
    api_key: str = field(default="", repr=False)
    base_url: str = ""


@dataclass(frozen=True)
class SceneRequest:
    index: int
    image: Path  # the character/reference photo of the scene
    out_dir: Path  # an empty folder for the engine's files
    width: int  # the video's frame size and rate
    height: int
    fps: int
    frames: int
    move: str
    focus: tuple[float, float] = (0.5, 0.5)  # where zooms close in
    seed: int = 0
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 1.0  # how far the camera move travels (0..2, 1 usual)
    # Keyframes for models that animate between two pictures: ``image`` is
    # the first frame, ``end_image`` the last.
    end_image: Path | None = None
    model: ModelRef | None = None  # None for engines without weights (photo)
    on_progress: ProgressFn | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def report(self, fraction: float, message: str = "") -> None:
        if self.stop.is_set():
            raise SceneStopped(f"scene {self.index} was stopped")
        if self.on_progress is not None:
            self.on_progress(fraction, message)


@dataclass(frozen=True)
class SceneOutput:
    """What the engine made. ``clip``: a video the renderer plays. ``still``:
    a picture the renderer moves as it would the photo (an image model's
    output). Neither: the renderer moves the photo itself (nothing to store).
    ``preview``: a small JPEG for the job page."""

    preview: Path | None
    clip: Path | None = None
    still: Path | None = None


class SceneEngine(Protocol):
    name: str
    version: str  # part of every fingerprint: bump it when the output changes
    # Whether a new seed makes a different output: the consistency gate makes
    # a failing scene again with new seeds only when it does.
    seeded: bool

    def render(self, request: SceneRequest) -> SceneOutput: ...
