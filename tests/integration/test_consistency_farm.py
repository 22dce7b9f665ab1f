"""The consistency gate on a real worker: a render whose scenes lose their
character on every attempt waits for its owner's review, and goes on to its
video through Redis and the worker once the scenes are approved."""

from __future__ import annotations

import shutil
import time

import pytest

from media_jobs.models import Job, ModelSpec
from projects import review, scene_engines
from projects.models import Project, Render, Scene
from projects.pipeline import start_render
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.processes import DRIFT_ENGINE, IMPOSTOR

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def drifting(settings, worker_media, sample_files):
    settings.STUDIO_SCENE_ENGINES = [DRIFT_ENGINE]
    scene_engines.engines.cache_clear()
    shutil.copyfile(sample_files["hopper"], worker_media / IMPOSTOR)
    ModelSpec.objects.create(
        key="drift", name="Drifting test generator", kind="scene",
        engine="drift-test", revision="1", vram_gb=0.0,
    )  # fmt: skip
    yield
    scene_engines.engines.cache_clear()


def _wait(job_id: int, statuses: set[str], timeout: float = 180.0) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status} ({job.message})")


def test_a_render_held_for_review_finishes_on_the_worker_once_approved(
    alice, sample_files, drifting
):
    project = ProjectFactory(owner=alice, target_duration=4.0, preset="preview")
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["song"])

    job = start_render(project, model="drift")
    job = _wait(job.pk, {Job.Status.REVIEW, Job.Status.FAILED, Job.Status.SUCCEEDED})

    assert job.status == Job.Status.REVIEW, job.error
    project.refresh_from_db()
    assert project.status == Project.Status.REVIEW
    assert project.character is not None and project.character.auto_created
    flagged = list(review.review_queue(alice))
    assert flagged and all(s.job_id == job.pk for s in flagged)
    for scene in flagged:
        assert scene.tries == 3
        assert scene.gate["failure"]["frame"] == scene.frames // 2

    for scene in flagged:
        review.approve(scene)
    job = _wait(job.pk, {Job.Status.SUCCEEDED, Job.Status.FAILED})

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Render.objects.filter(job=job).exists()
    assert all(s.review == Scene.Review.APPROVED for s in Scene.objects.filter(job=job))
