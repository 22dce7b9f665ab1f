"""Scene engines for the farm's integration tests (``STUDIO_SCENE_ENGINES``)."""

from __future__ import annotations

import os
import time

import av

from workers.faces.frames import StillFrames
from workers.scenes import SceneOutput, SceneRequest
from workers.scenes.photo import PhotoEngine

STEP_S = 0.1


class SlowPhotoEngine:
    """A stand-in for a slow, model-backed scene engine (an image or video
    generator on a GPU), which this machine cannot run.

    It makes the photo engine's output, then "works" for
    ``$STUDIO_TEST_ENGINE_SECONDS`` (default 2) in 0.1 s steps, reporting its
    progress at every step as a real engine would between denoising steps, so
    a test can kill its worker, restart Redis, cancel its job or let it run
    past its time limit while it is busy.
    """

    name = "slow-photo"
    version = "slow-1"
    seeded = False

    def render(self, request: SceneRequest) -> SceneOutput:
        output = PhotoEngine().render(request)
        seconds = float(os.environ.get("STUDIO_TEST_ENGINE_SECONDS", "2"))
        steps = max(1, round(seconds / STEP_S))
        for step in range(1, steps + 1):
            time.sleep(STEP_S)
            request.report(
                step / steps, f"scene {request.index}: step {step} of {steps}"
            )
        return output


class DriftingEngine:
    """A stand-in for a generator that sometimes loses its character, which
    this machine cannot run: it makes a clip of the scene's photo under its
    camera move, except for the seeds listed in ``$STUDIO_TEST_DRIFT_SEEDS``
    (comma-separated), whose clip switches half-way to the person in
    ``$STUDIO_TEST_IMPOSTOR`` (a photo), as a drifting identity would.

    A new seed changes what it makes (``seeded``), so the consistency gate
    makes a failing scene again with new seeds.
    """

    name = "drift-test"
    version = "drift-1"
    seeded = True

    def render(self, request: SceneRequest) -> SceneOutput:
        size = (request.width, request.height)
        frames = max(request.frames, 1)
        own = StillFrames(
            request.image, size, frames, request.fps, request.move, request.focus
        )
        drift = {
            int(s)
            for s in os.environ.get("STUDIO_TEST_DRIFT_SEEDS", "").split(",")
            if s
        }
        other = None
        if request.seed in drift:
            other = StillFrames(
                os.environ["STUDIO_TEST_IMPOSTOR"], size, frames, request.fps,
                request.move,
            )  # fmt: skip
        clip = request.out_dir / "clip.mp4"
        with av.open(str(clip), "w") as container:
            stream = container.add_stream("libx264", rate=request.fps)
            stream.width, stream.height = own.size
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast", "crf": "20"}
            for i in range(frames):
                source = other if other is not None and i >= frames // 2 else own
                picture = av.VideoFrame.from_ndarray(source.frame(i), format="rgb24")
                for packet in stream.encode(picture):
                    container.mux(packet)
                request.report(i / frames, f"scene {request.index}: frame {i}")
            for packet in stream.encode():
                container.mux(packet)
        preview = PhotoEngine().render(request).preview
        return SceneOutput(preview=preview, clip=clip)
