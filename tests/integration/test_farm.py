"""The worker farm with real processes: ``manage.py worker`` processes of
different GPU sizes on Redis, a worker killed mid-scene, Redis restarted
mid-job, a failing scene, a scene past its time limit, the cache, a cancel.

Tests that kill workers or restart Redis run on a Redis of their own and
workers of their own; their test process sends nothing: it creates the job
row (``create_render_job``) and the reconciler of a ``--beat`` worker admits
it, so the canvas leaves from the farm's own broker.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image

from media_jobs import control
from media_jobs.models import CacheEntry, Job, ModelSpec, RunStatus, TaskRun
from projects import scene_engines
from projects.models import Render, Scene
from projects.pipeline import create_render_job, start_render
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.processes import ROOT, TEST_SCENE_ENGINES, Farm

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

POLL_S = 0.2
# Lets the reconciler (beat, every second) admit jobs within a second, and
# sends an unacknowledged message of a lost worker back after 10 s.
FARM_ENV = {
    "STUDIO_RECONCILE_EVERY_S": "1",
    "STUDIO_VISIBILITY_TIMEOUT": "10",
    "STUDIO_STALE_JOB_S": "20",
    "STUDIO_TEST_ENGINE_SECONDS": "0.5",
}


@pytest.fixture(autouse=True)
def _slow_engine(settings):
    """This process checks a render's model too (``create_render_job``)."""
    settings.STUDIO_SCENE_ENGINES = [TEST_SCENE_ENGINES]
    scene_engines.engines.cache_clear()
    yield
    scene_engines.engines.cache_clear()


def _model(key: str, vram_gb: float, engine: str = "slow-photo") -> ModelSpec:
    return ModelSpec.objects.create(
        key=key,
        name=f"test model {key}",
        kind="scene",
        engine=engine,
        revision="1",
        vram_gb=vram_gb,
    )


def _project(owner, sample_files, images=("astronaut", "hopper"), duration=4.0):
    project = ProjectFactory(owner=owner, target_duration=duration, preset="preview")
    for name in images:
        add_asset_from_path(project, sample_files[name])
    add_asset_from_path(project, sample_files["song"])
    return project


def _wait_for(
    check: Callable[[], object], what: str, timeout: float, logs: Callable[[], str]
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"{what}: not within {timeout:g} s\n{logs()}")


def _wait_finished(job_id: int, logs: Callable[[], str], timeout=150.0) -> Job:
    def finished():
        job = Job.objects.get(pk=job_id)
        return job if job.is_finished else None

    try:
        return _wait_for(finished, f"job {job_id} to finish", timeout, logs)
    except AssertionError:
        job = Job.objects.get(pk=job_id)
        runs = [
            (r.key, r.status, r.worker, r.deliveries)
            for r in TaskRun.objects.filter(job_id=job_id)
        ]
        raise AssertionError(
            f"job {job_id} still {job.status} ({job.stage}: {job.message}) after"
            f" {timeout:g} s; tasks {runs}\n{logs()}"
        ) from None


def _session_logs(shared_media: Path) -> Callable[[], str]:
    def logs() -> str:
        path = shared_media / "worker.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "--- session worker ---\n" + "\n".join(text.splitlines()[-40:])

    return logs


def _cpu_worker(farm: Farm, **env: str):
    """The cpu/io stages, and the reconciler that admits the test's jobs."""
    return farm.start("--vram", "0", "--beat", "--concurrency", "2", name="cpu@test",
                      env=env)  # fmt: skip


def _work_dir_entries() -> list[str]:
    root = Path(settings.STUDIO_WORK_DIR)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def _scene_runs(job: Job) -> list[TaskRun]:
    return list(TaskRun.objects.filter(job=job, stage="scenes").order_by("key"))


# --- 1. tasks land on the workers their models need ------------------------


def test_a_worker_serves_every_queue_its_gpu_holds():
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "worker", "--vram", "24",
         "--print-queues"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "gpu-24,gpu-16,gpu-8,cpu,io"


def test_scenes_run_on_the_gpu_workers_their_models_need(
    alice, sample_files, private_redis, farm_factory
):
    _model("gpu-small", 6)
    _model("gpu-large", 20)
    farm = farm_factory(private_redis.url(), **FARM_ENV)
    workers = [
        _cpu_worker(farm),
        farm.start("--vram", "8", "--gpu-only", name="small@test"),
        farm.start("--vram", "24", "--gpu-only", name="large@test"),
    ]
    farm.wait_ready(*workers)
    project = _project(alice, sample_files)

    large = create_render_job(project, model="gpu-large")
    small = create_render_job(project, model="gpu-small")
    large = _wait_finished(large.pk, farm.logs)
    small = _wait_finished(small.pk, farm.logs)

    assert large.status == Job.Status.SUCCEEDED, large.error
    assert small.status == Job.Status.SUCCEEDED, small.error
    large_runs = _scene_runs(large)
    assert large_runs
    assert {(r.queue, r.worker) for r in large_runs} == {("gpu-24", "large@test")}
    small_runs = _scene_runs(small)
    assert small_runs
    assert {r.queue for r in small_runs} == {"gpu-8"}
    assert {r.worker for r in small_runs} <= {"small@test", "large@test"}
    # The stages without a model stay on the CPU worker.
    others = TaskRun.objects.filter(job__in=[large, small]).exclude(stage="scenes")
    assert {(r.queue, r.worker) for r in others} == {("cpu", "cpu@test")}


# --- 2. a worker killed in the middle of a scene ---------------------------


def test_a_job_survives_a_worker_killed_in_the_middle_of_a_scene(
    alice, sample_files, private_redis, farm_factory
):
    _model("gpu-small", 6)
    # The reconciler waits long enough for the redelivery to come first.
    env = {**FARM_ENV, "STUDIO_TEST_ENGINE_SECONDS": "3", "STUDIO_STALE_JOB_S": "60"}
    farm = farm_factory(private_redis.url(), **env)
    cpu = _cpu_worker(farm)
    doomed = farm.start("--vram", "8", "--gpu-only", name="doomed@test")
    other = farm.start("--vram", "8", "--gpu-only", name="other@test")
    farm.wait_ready(cpu, doomed, other)
    project = _project(alice, sample_files, duration=5.0)
    job = create_render_job(project, model="gpu-small")

    victim = _wait_for(
        lambda: TaskRun.objects.filter(
            job=job, stage="scenes", status=RunStatus.RUNNING,
            worker="doomed@test", progress__gt=0.3,
        ).first(),
        "a scene running on doomed@test", 90, farm.logs,
    )  # fmt: skip
    doomed.kill()
    assert not doomed.alive()
    # A supervisor starts a replacement. A worker sweeps the unacknowledged
    # messages older than the visibility timeout back onto their queues when
    # it connects (kombu's restore_visible); the running ones sweep only
    # every ~100 s (kombu's default restore interval x throttle), so the
    # replacement starts once the killed delivery is past the 10 s timeout.
    started = victim.started_at.timestamp()
    time.sleep(max(0.0, started + 11 - time.time()))
    farm.wait_ready(farm.start("--vram", "8", "--gpu-only", name="spare@test"))

    job = _wait_finished(job.pk, farm.logs, timeout=120)

    assert job.status == Job.Status.SUCCEEDED, job.error
    victim.refresh_from_db()
    job.refresh_from_db()
    # What brought the scene back: the redelivered message (deliveries counts
    # every start of the task) or the reconciler resending the job after it
    # stood still for STUDIO_STALE_JOB_S (its resend queues the scene anew,
    # so it starts counting again). What happens here is the redelivery: the
    # replacement's sweep comes well before the 60 s the reconciler waits.
    redelivered = victim.deliveries >= 2
    resumed = int(job.params.get("resumes", 0)) >= 1
    assert redelivered or resumed, (victim.deliveries, job.params)
    assert redelivered, (
        f"the scene came back through the reconciler, not a redelivery:"
        f" deliveries={victim.deliveries} resumes={job.params.get('resumes')}"
    )
    assert victim.status == RunStatus.DONE
    assert victim.worker in ("other@test", "spare@test")
    # Exactly one output per scene.
    scenes = list(Scene.objects.filter(job=job).order_by("index"))
    assert [s.index for s in scenes] == list(range(len(scenes)))
    assert {s.status for s in scenes} == {Scene.Status.DONE}
    fingerprints = {s.fingerprint for s in scenes}
    assert "" not in fingerprints
    entries = CacheEntry.objects.filter(kind=CacheEntry.Kind.SCENE)
    assert sorted(e.fingerprint for e in entries) == sorted(fingerprints)
    stored = sorted((Path(settings.MEDIA_ROOT) / "scenes").rglob("*"))
    files = [p for p in stored if p.is_file()]
    assert sorted(p.parent.name for p in files) == sorted(fingerprints), files
    assert {p.name for p in files} == {"preview.jpg"}
    assert Render.objects.filter(job=job).count() == 1


# --- 3. Redis restarted in the middle of a job -----------------------------


def test_a_job_survives_a_redis_restart(
    alice, sample_files, private_redis, farm_factory
):
    _model("gpu-small", 6)
    farm = farm_factory(
        private_redis.url(), **{**FARM_ENV, "STUDIO_TEST_ENGINE_SECONDS": "2"}
    )
    workers = [
        _cpu_worker(farm),
        farm.start("--vram", "8", "--gpu-only", name="gpu@test"),
    ]
    farm.wait_ready(*workers)
    project = _project(alice, sample_files, duration=5.0)
    job = create_render_job(project, model="gpu-small")
    _wait_for(
        lambda: TaskRun.objects.filter(
            job=job, stage="scenes", status=RunStatus.RUNNING, progress__gt=0.2
        ).exists(),
        "a scene running", 90, farm.logs,
    )  # fmt: skip

    private_redis.restart()

    job = _wait_finished(job.pk, farm.logs, timeout=120)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert private_redis.starts == 2
    scenes = Scene.objects.filter(job=job)
    assert {s.status for s in scenes} == {Scene.Status.DONE}
    assert Render.objects.filter(job=job).count() == 1


# --- 4. one scene raising ---------------------------------------------------


def test_a_scene_that_raises_fails_the_job_once_and_leaves_no_files(
    alice, sample_files, worker_media, tmp_path
):
    third = tmp_path / "coffee.png"
    Image.fromarray(np.asarray(skimage.data.coffee())).save(third)
    files = {**sample_files, "coffee": third}
    project = _project(alice, files, ("astronaut", "hopper", "coffee"), duration=6.0)
    # Quick mode off: it would find the damaged photo before any scene does.
    project.auto_character = False
    project.save(update_fields=["auto_character"])
    broken = project.images().get(original_name="grace_hopper.jpg")
    Path(default_storage.path(broken.file.name)).write_bytes(b"\x00" * 4096)
    logs = _session_logs(worker_media)

    job = _wait_finished(start_render(project).pk, logs)

    assert job.status == Job.Status.FAILED
    assert "Traceback" not in job.error
    assert "grace_hopper.jpg" in job.error, job.error
    match = re.search(r"scene (\d+)", job.error)
    assert match, job.error
    index = int(match.group(1))
    failed_scene = Scene.objects.get(job=job, index=index)
    assert failed_scene.image_id == broken.pk
    assert failed_scene.status == Scene.Status.FAILED
    # The failure is recorded once: one failed, undelivered-again task of
    # that scene, and the job's end is not written twice.
    run = TaskRun.objects.get(job=job, key=f"scene-{index}")
    assert run.status == RunStatus.FAILED
    assert run.deliveries == 1
    finished_at = job.finished_at
    assert finished_at is not None
    # The scenes still running see the failure at their next report; then
    # nothing of the job is left on disk.
    _wait_for(lambda: not _work_dir_entries(), "the work dir to empty", 30,
              lambda: f"{_work_dir_entries()}\n{logs()}")  # fmt: skip
    time.sleep(1.0)
    job.refresh_from_db()
    assert job.finished_at == finished_at
    assert job.status == Job.Status.FAILED
    assert _work_dir_entries() == []
    renders = Path(settings.MEDIA_ROOT) / "renders" / str(alice.pk) / str(job.pk)
    assert not renders.exists() or not any(renders.iterdir())
    assert not Render.objects.filter(job=job).exists()


# --- 5. a task past its time limit ----------------------------------------


def test_a_scene_past_its_time_limit_fails_cleanly(
    alice, sample_files, private_redis, farm_factory
):
    _model("gpu-small", 6)
    farm = farm_factory(private_redis.url(), **FARM_ENV)
    # Only the GPU worker has the short limits: the stages on the CPU worker
    # may take a few seconds on a busy machine.
    gpu = farm.start(
        "--vram", "8", "--gpu-only", name="gpu@test",
        env={"STUDIO_TASK_SOFT_TIME_LIMIT": "2", "STUDIO_TASK_TIME_LIMIT": "20",
             "STUDIO_TEST_ENGINE_SECONDS": "8"},
    )  # fmt: skip
    farm.wait_ready(_cpu_worker(farm), gpu)
    project = _project(alice, sample_files)
    job = create_render_job(project, model="gpu-small")

    job = _wait_finished(job.pk, farm.logs, timeout=90)

    assert job.status == Job.Status.FAILED
    assert "ran past its time limit of 2 s" in job.error, job.error
    failed = Scene.objects.filter(job=job, status=Scene.Status.FAILED)
    assert failed.exists()
    for scene in failed:
        assert "ran past its time limit of 2 s" in scene.error, scene.error
    assert not TaskRun.objects.filter(job=job, status=RunStatus.RUNNING).exists()
    _wait_for(lambda: not _work_dir_entries(), "the work dir to empty", 20,
              lambda: f"{_work_dir_entries()}\n{farm.logs()}")  # fmt: skip
    assert gpu.alive()  # the soft limit unwound the task; nothing was killed


# --- 6. an identical render comes from the cache --------------------------


def test_an_identical_render_is_served_from_the_cache_without_an_engine(
    alice, sample_files, worker_media
):
    logs = _session_logs(worker_media)
    project = _project(alice, sample_files)
    first = _wait_finished(start_render(project).pk, logs)
    assert first.status == Job.Status.SUCCEEDED, first.error
    first_render = Render.objects.get(job=first)
    # Any engine that ran now would fail on these files.
    for asset in project.assets.all():
        Path(default_storage.path(asset.file.name)).write_bytes(b"\x00" * 4096)

    second = _wait_finished(start_render(project).pk, logs)

    assert second.status == Job.Status.SUCCEEDED, second.error
    assert "from the cache" in second.message, second.message
    runs = {r.key: r for r in TaskRun.objects.filter(job=second)}
    scene_keys = {f"scene-{s.index}" for s in Scene.objects.filter(job=second)}
    assert scene_keys
    engine_runs = {"analyze", "character", "assemble", *scene_keys}
    assert engine_runs <= set(runs), sorted(runs)
    not_cached = sorted(k for k in engine_runs if not runs[k].cached)
    assert not_cached == [], not_cached
    # Planning runs again (no engine: it reads the cached analysis).
    assert set(runs) - engine_runs <= {"plan"}
    render = Render.objects.get(job=second)
    assert render.cached
    assert render.file == first_render.file
    assert render.fingerprint == first_render.fingerprint
    assert all(s.cached for s in Scene.objects.filter(job=second))


# --- 7. cancel while a scene runs ------------------------------------------


def test_cancelling_stops_a_running_scene_and_frees_its_worker(
    alice, sample_files, worker_media, farm_factory, settings
):
    """On the session's Redis (the test process revokes through it); the
    session worker runs the cpu stages, this test's worker the gpu-8 queue."""
    _model("gpu-slow", 6)
    _model("gpu-fast", 6, engine="photo")
    settings.MEDIA_ROOT = worker_media / "media"
    settings.STUDIO_WORK_DIR = worker_media / "work"
    farm = farm_factory(settings.REDIS_URL, STUDIO_TEST_ENGINE_SECONDS="20")
    gpu = farm.start("--vram", "8", "--gpu-only", name=f"gpu-cancel-{id(farm)}@test")
    farm.wait_ready(gpu)
    session = _session_logs(worker_media)

    def logs() -> str:
        return f"{farm.logs()}\n{session()}"

    project = _project(alice, sample_files)
    job = start_render(project, model="gpu-slow")
    run = _wait_for(
        lambda: TaskRun.objects.filter(
            job=job, stage="scenes", status=RunStatus.RUNNING, progress__gt=0.05
        ).first(),
        "a slow scene running", 90, logs,
    )  # fmt: skip

    control.cancel(job)
    cancelled_at = time.monotonic()

    def stopped():
        # ``seconds`` is written by the task itself as it ends (the cancel
        # marks its record cancelled at once, but only the task times itself).
        fresh = TaskRun.objects.get(pk=run.pk)
        return fresh.status == RunStatus.CANCELLED and fresh.seconds is not None

    _wait_for(stopped, "the scene's task to stop", 10, logs)
    assert time.monotonic() - cancelled_at < 10
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert not Render.objects.filter(job=job).exists()

    follow = _wait_finished(start_render(project, model="gpu-fast").pk, logs, 90)

    assert follow.status == Job.Status.SUCCEEDED, follow.error
    follow_runs = _scene_runs(follow)
    assert {r.worker for r in follow_runs} == {gpu.name}
    # The worker took the next job's scenes before the cancelled one's 20 s
    # of work would have ended: it had stopped, not finished it.
    first_start = min(r.started_at for r in follow_runs)
    assert (first_start - run.started_at).total_seconds() < 20
    assert gpu.alive()
