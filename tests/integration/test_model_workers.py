"""A model from the store served by a real worker: a tiny random-weight
Stable Diffusion pipeline imported into the store, registered as an 8 GB
image model, preloaded by a ``manage.py worker --vram 8`` as it starts
(reported in its heartbeat), offered by the planner only while that worker
lives, and used by that worker to paint every scene of a render."""

from __future__ import annotations

import pytest

from media_jobs.models import Job, ModelSpec, TaskRun, WorkerHeartbeat
from projects.models import Project, Scene
from projects.pipeline import create_render_job
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.processes import wait_for
from tests.tiny_models import tiny_sd_pipeline
from workers.modelstore.store import import_dir

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FARM_ENV = {"STUDIO_RECONCILE_EVERY_S": "1", "STUDIO_HEARTBEAT_S": "0.5"}
PARAMS = {"steps": 2, "width": 32, "height": 32, "multiple": 8, "denoise": 0.6}


def test_a_worker_preloads_a_stored_model_reports_it_and_paints_the_scenes(
    alice, sample_files, private_redis, farm_factory, settings, tmp_path
):
    from projects.storyboards import available_models

    store = tmp_path / "store"
    saved = tmp_path / "tiny-sd"
    tiny_sd_pipeline().save_pretrained(saved)
    import_dir(store, "tiny-sd", saved)
    settings.STUDIO_MODEL_STORE = store
    settings.CELERY_TASK_ALWAYS_EAGER = False
    ModelSpec.objects.create(
        key="tiny-sd", name="Tiny SD", kind=ModelSpec.Kind.IMAGE, engine="diffusers",
        provider="diffusers", location=ModelSpec.Location.LOCAL, revision="1",
        vram_gb=6.0, cpu=True, params=PARAMS, quality=9, speed=1,
    )  # fmt: skip
    assert "tiny-sd" not in {m.key for m in available_models()}  # no gpu-8 worker

    farm = farm_factory(private_redis.url(), STUDIO_MODEL_STORE=str(store), **FARM_ENV)
    cpu = farm.start("--vram", "0", "--beat", "--concurrency", "2", name="cpu@test")
    card = farm.start(
        "--vram", "8", "--gpu-only", name="card@test",
        env={"STUDIO_PRELOAD_MODELS": "tiny-sd"},
    )  # fmt: skip
    farm.wait_ready(cpu, card)

    def preloaded():
        beat = WorkerHeartbeat.objects.filter(hostname="card@test").first()
        if beat and any(m["key"] == "tiny-sd" for m in beat.loaded):
            return beat
        return None

    beat = wait_for(
        preloaded, "tiny-sd preloaded on card@test", timeout=120.0, logs=farm.logs
    )
    assert beat.installed == ["tiny-sd"]
    (entry,) = [m for m in beat.loaded if m["key"] == "tiny-sd"]
    assert entry["policy"] == "cpu" and entry["uses"] == 1  # no GPU on this host
    assert "tiny-sd" in {m.key for m in available_models()}

    # Random weights paint no face: the gate flags the character's scenes,
    # and the render goes on to the end.
    project = ProjectFactory(
        owner=alice, target_duration=4.0, preset="preview",
        review_policy=Project.ReviewPolicy.CONTINUE,
    )  # fmt: skip
    for name in ("astronaut", "hopper", "song"):
        add_asset_from_path(project, sample_files[name])
    job = create_render_job(project, model="tiny-sd")
    job = wait_for(
        lambda: (j := Job.objects.get(pk=job.pk)).is_finished and j,
        f"job {job.pk} to finish", timeout=240.0, logs=farm.logs,
    )  # fmt: skip

    assert job.status == Job.Status.SUCCEEDED, job.error
    scenes = list(Scene.objects.filter(job=job))
    assert scenes and all(s.clip.endswith("/still.png") for s in scenes)
    runs = TaskRun.objects.filter(job=job, stage="scenes")
    assert {(r.queue, r.worker) for r in runs} == {("gpu-8", "card@test")}
    # The preloaded pipeline served every scene: loaded once, used again.
    beat = wait_for(
        lambda: (b := preloaded()) and any(
            m["key"] == "tiny-sd" and m["uses"] > len(scenes) for m in b.loaded
        ) and b,
        "the heartbeat to count the scenes' uses", logs=farm.logs,
    )  # fmt: skip
