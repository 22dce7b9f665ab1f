"""Workers started by ``manage.py worker`` report heartbeats (queues, device,
GPU memory, loaded models), and the planner counts a GPU queue as served
exactly while a worker on it reports."""

from __future__ import annotations

import pytest

from media_jobs.models import ModelSpec, WorkerHeartbeat
from projects import scene_engines
from tests.processes import TEST_SCENE_ENGINES, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_gpu_worker_reports_its_queues_and_its_queue_counts_as_served(
    farm_factory, private_redis, settings
):
    from projects.storyboards import available_models

    settings.STUDIO_SCENE_ENGINES = [TEST_SCENE_ENGINES]
    scene_engines.engines.cache_clear()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    ModelSpec.objects.create(
        key="gpu-test", name="a 12 GB test model", kind="scene",
        engine="slow-photo", revision="1", vram_gb=12, quality=8,
    )  # fmt: skip
    assert "gpu-test" not in {m.key for m in available_models()}

    farm = farm_factory(private_redis.url(), STUDIO_HEARTBEAT_S="0.5")
    worker = farm.start("--vram", "16", "--gpu-only", name="card@test")
    farm.wait_ready(worker)

    beat = wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname="card@test").first()
    )
    assert beat.name.startswith("card@test#")
    assert beat.queues == ["gpu-16", "gpu-8"]
    assert beat.device == "cpu" or beat.device.startswith("cuda:")
    assert beat.loaded == []
    first = beat.last_seen
    wait_for(
        lambda: WorkerHeartbeat.objects.filter(pk=beat.pk, last_seen__gt=first).exists()
    )
    assert "gpu-test" in {m.key for m in available_models()}
    scene_engines.engines.cache_clear()

    worker.stop()
    # A worker that shuts down cleanly takes its heartbeat with it.
    wait_for(lambda: not WorkerHeartbeat.objects.filter(pk=beat.pk).exists())
    assert "gpu-test" not in {m.key for m in available_models()}
