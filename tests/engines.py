"""Scene engines for the farm's integration tests (``STUDIO_SCENE_ENGINES``)."""

from __future__ import annotations

import os
import time

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
