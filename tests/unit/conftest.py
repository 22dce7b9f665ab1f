from pathlib import Path

import numpy as np
import pytest

from projects.models import Project, Scene
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.media_checks import frame_differences


@pytest.fixture(autouse=True)
def _in_memory_channel_layer(settings):
    """Unit tests keep websocket traffic inside the test process; the Redis
    channel layer is exercised by the integration tests with a real worker."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }


@pytest.fixture
def project(alice) -> Project:
    return ProjectFactory(owner=alice, title="Summer song")


@pytest.fixture
def small_project(alice, sample_files) -> Project:
    """Ready to render, and quick to: a 4 s preview."""
    project = ProjectFactory(
        owner=alice, title="Night drive", target_duration=4.0, preset="preview"
    )
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])
    return project


@pytest.fixture
def ann(alice, sample_files, tmp_path):
    """Alice's character from two photos of the astronaut (accepted) and one
    of Grace Hopper (turned away: not the same person as the others)."""
    from tests.unit.character_helpers import mirrored, register_character

    return register_character(
        alice,
        "Ann",
        [
            (sample_files["astronaut"], "astronaut.png"),
            (mirrored(sample_files["astronaut"], tmp_path), "mirrored.png"),
            (sample_files["hopper"], "hopper.jpg"),
        ],
    )


@pytest.fixture
def farm_full(settings) -> None:
    """No free slot on the farm: every job started stays queued."""
    settings.STUDIO_MAX_RUNNING_JOBS = 0


@pytest.fixture
def ready_project(project, sample_files) -> Project:
    """A project with what a render needs: a photo and a song."""
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])
    return project


@pytest.fixture
def planned(ready_project, sample_files) -> Project:
    """Alice's project with two photos, a song and a planned storyboard."""
    from media_jobs.models import Job
    from projects.pipeline import plan_now

    add_asset_from_path(ready_project, sample_files["hopper"])
    ready_project.target_duration = 6.0
    ready_project.preset = "preview"
    ready_project.save()
    job = plan_now(ready_project)
    assert job.status == Job.Status.SUCCEEDED, job.error
    ready_project.refresh_from_db()
    return ready_project


# Checks of rendered videos against the scenes planned for them (also used by
# the integration tests).


def changes(video: Path) -> list[tuple[int, int]]:
    """Runs [first, last) of frames where the picture changes far faster
    than the camera moves around them: a cut is a run of one frame, a
    crossfade of n frames a run of n (each differs from the one before).

    "Far faster" is twice the median change over a second either side, so a
    fast pan (a steady change every frame) is not taken for a transition.
    """
    diffs = frame_differences(video)
    runs: list[tuple[int, int]] = []
    for i in range(1, len(diffs)):
        around = float(np.median(diffs[max(1, i - 30) : i + 31]))
        if diffs[i] <= max(2.0, 2 * around):
            continue
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def planned_windows(scenes: list[Scene]) -> list[tuple[int, int]]:
    """The frames that differ from the one before at each join: at a cut,
    the cut frame; in a transition of n frames, which covers output frames
    [c - n // 2, c - n // 2 + n) around cut frame c, those n frames (each is
    a mix, the first already unlike the outgoing scene) and the one after
    (the first that is all of the incoming scene)."""
    windows = []
    for a, b in zip(scenes, scenes[1:], strict=False):
        n = a.transition_frames
        if n:
            first = b.start_frame - n // 2
            windows.append((first, first + n + 1))
        else:
            windows.append((b.start_frame, b.start_frame + 1))
    return windows


def joins_match(
    detected: list[tuple[int, int]], planned: list[tuple[int, int]]
) -> bool:
    """Each planned join shows up as one run of changing frames inside its
    window. A cut is exact; a transition's first and last steps are small by
    design (its window is centred, so they move a fraction of the way), so
    the detector may miss one frame at either end of it."""
    if len(detected) != len(planned):
        return False
    for (d0, d1), (p0, p1) in zip(detected, planned, strict=True):
        if p1 - p0 == 1:
            if (d0, d1) != (p0, p1):
                return False
        elif not (p0 <= d0 <= p0 + 1 and p1 - 1 <= d1 <= p1):
            return False
    return True
