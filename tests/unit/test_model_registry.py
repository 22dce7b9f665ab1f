"""The model registry and this host's model store, as an operator uses them:
every planned model in the admin with its state; `manage.py models pull`
against a local server that answers like the hub (the real huggingface_hub
code runs), `import`, `verify` catching a corrupted file, the admin's pull
job; a pulled model served by its provider; and the planner choosing only
models that are installed (or keyed) and served."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from media_jobs.heartbeat import MODEL_CACHE
from media_jobs.models import Job, ModelSpec
from media_jobs.registry import state, sync_models
from tests.hub_server import HubServer
from tests.unit.workers.test_insightface_provider import (
    DETECTOR_FILE,
    EMBEDDER_FILE,
    _embedder,
    _random_detector,
)
from workers.modelstore.registry import planned_models

pytestmark = pytest.mark.django_db

FACES = "insightface-buffalo-l"


@pytest.fixture
def store(settings, tmp_path) -> Path:
    settings.STUDIO_MODEL_STORE = tmp_path / "store"
    return settings.STUDIO_MODEL_STORE


@pytest.fixture
def hub(settings, tmp_path):
    """The hub's insightface repository, holding a pack of random-weight
    graphs built here, laid out as the registry's file patterns expect."""
    rng = np.random.default_rng(7)
    built = tmp_path / "built"
    built.mkdir()
    _random_detector(built / DETECTOR_FILE, rng)
    _embedder(built / EMBEDDER_FILE, rng)
    files = {
        f"models/buffalo_l/{name}": (built / name).read_bytes()
        for name in (DETECTOR_FILE, EMBEDDER_FILE)
    }
    files["models/antelopev2/unwanted.onnx"] = b"not in the allow-patterns"
    with HubServer() as server:
        server.commit = server.add_repo(ModelSpec.objects.get(key=FACES).repo, files)
        settings.STUDIO_HF_ENDPOINT = server.url
        yield server


def _run(*args: str) -> str:
    out = StringIO()
    call_command("models", *args, stdout=out)
    return out.getvalue()


def test_every_planned_model_is_in_the_registry_with_its_state(admin_client, store):
    planned = planned_models()
    assert set(ModelSpec.objects.values_list("key", flat=True)) >= set(planned)
    assert len(planned) >= 35

    response = admin_client.get("/admin/media_jobs/modelspec/", {"all": ""})

    html = response.content.decode()
    assert response.status_code == 200
    for key in (
        "sdxl-base",
        "ltx-video-0.9.7-distilled",
        "musicgen-large",
        "bark",
        "xtts-v2",
        "whisper-large-v3",
        FACES,
        "llama-3.1-8b",
        "kling",
    ):
        assert key in html
    assert state(ModelSpec.objects.get(key="sdxl-base")) == "missing"
    assert state(ModelSpec.objects.get(key="dlib")) == "embedded"
    assert state(ModelSpec.objects.get(key="gpt-4o-mini")) == "no key"


def test_sync_keeps_what_the_operator_set_until_reset():
    ModelSpec.objects.filter(key="sdxl-base").update(enabled=False, name="renamed")

    sync_models()
    kept = ModelSpec.objects.get(key="sdxl-base")
    assert (kept.enabled, kept.name) == (False, planned_models()["sdxl-base"].name)

    sync_models(reset=True)
    assert ModelSpec.objects.get(key="sdxl-base").enabled is True


def test_a_pulled_model_is_listed_verified_and_served_by_its_provider(
    store, hub, settings, tmp_path
):
    out = _run("pull", FACES, "--quiet")

    assert f"{FACES}: 2 files" in out
    pulled = {r.path.split("/")[-1] for r in hub.requests if r.method == "GET"}
    assert "unwanted.onnx" not in pulled
    listing = _run("list", "--installed")
    assert FACES in listing and "installed" in listing
    assert f"{FACES}: sound" in _run("verify", FACES)

    # The face provider loads the pack from the store and runs it.
    settings.STUDIO_FACE_PROVIDER = "insightface"
    MODEL_CACHE.clear()
    picture = tmp_path / "squares.png"
    rng = np.random.default_rng(7)
    image = np.full((240, 360, 3), 90, dtype=np.uint8)
    for _ in range(12):
        x, y = rng.integers(0, 330), rng.integers(0, 210)
        image[y : y + 30, x : x + 30] = rng.integers(0, 256, 3)
    Image.fromarray(image).save(picture)
    detected = StringIO()
    call_command("faces", "detect", str(picture), "--json", stdout=detected)
    report = json.loads(detected.getvalue())
    loaded = [entry["key"] for entry in MODEL_CACHE.loaded()]
    MODEL_CACHE.clear()
    assert report["provider"] == "insightface"
    assert report["faces"]
    # The process's model cache holds it (what a worker's heartbeat reports).
    assert loaded == [f"{FACES}:{store}"]


def test_verify_catches_a_corrupted_file(store, hub):
    _run("pull", FACES, "--quiet")
    weights = next((store / FACES).rglob(EMBEDDER_FILE))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))

    out = StringIO()
    with pytest.raises(CommandError, match="1 model\\(s\\) failed verification"):
        call_command("models", "verify", FACES, stdout=out)
    assert "hash" in out.getvalue() and EMBEDDER_FILE in out.getvalue()


def test_import_registers_files_copied_by_hand(store, tmp_path):
    copied = tmp_path / "usb" / "models" / "buffalo_l"
    copied.mkdir(parents=True)
    rng = np.random.default_rng(3)
    _random_detector(copied / DETECTOR_FILE, rng)
    _embedder(copied / EMBEDDER_FILE, rng)

    out = _run("import", FACES, str(tmp_path / "usb"))

    assert "2 files imported" in out
    assert state(ModelSpec.objects.get(key=FACES)) == "installed"
    assert f"{FACES}: sound" in _run("verify", FACES)


def test_a_model_without_weights_or_an_unknown_one_is_not_pulled(store):
    with pytest.raises(CommandError, match="no weights to pull"):
        _run("pull", "gpt-4o-mini")
    with pytest.raises(CommandError, match="no model 'nope'"):
        _run("pull", "nope")
    with pytest.raises(CommandError, match="models pull sdxl-base"):
        _run("verify", "sdxl-base")


def test_the_admin_pulls_a_model_as_a_job(
    admin_client, store, hub, settings, django_capture_on_commit_callbacks
):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the job runs when sent
    spec = ModelSpec.objects.get(key=FACES)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/media_jobs/modelspec/",
            {"action": "pull_models", "_selected_action": [spec.pk]},
            follow=True,
        )

    job = Job.objects.get(kind=Job.Kind.MODEL_PULL)
    assert response.status_code == 200
    assert f"job #{job.pk}" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress == 1.0
    assert state(spec) == "installed"


def test_the_planner_offers_a_local_model_only_once_installed_and_an_api_model_once_keyed(  # noqa: E501
    store, settings
):
    from projects.scene_engines import engines
    from projects.storyboards import available_models
    from workers.modelstore.store import import_dir

    settings.STUDIO_SCENE_ENGINES = ["tests.engines:DriftingEngine"]
    engines.cache_clear()
    settings.CELERY_TASK_ALWAYS_EAGER = True  # every queue served in-process
    ModelSpec.objects.create(
        key="local-gen", name="A local generator", kind=ModelSpec.Kind.VIDEO,
        engine="drift-test", revision="1", vram_gb=8, location="local",
        repo="studio/local-gen", files=["*.bin"], quality=7, speed=3,
    )  # fmt: skip
    ModelSpec.objects.create(
        key="cloud-gen", name="A cloud generator", kind=ModelSpec.Kind.VIDEO,
        engine="drift-test", revision="1", location="api", quality=9, speed=6,
        api_key_setting="STUDIO_KLING_API_KEY",
    )  # fmt: skip
    try:
        assert {m.key for m in available_models()} == {"photo"}

        folder = store.parent / "copied"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"\0" * 64)
        import_dir(store, "local-gen", folder, allow_patterns=["*.bin"])
        settings.STUDIO_KLING_API_KEY = "k-123"

        offered = {m.key: m for m in available_models()}
        assert set(offered) == {"photo", "local-gen", "cloud-gen"}
        assert offered["cloud-gen"].quality == 9
    finally:
        engines.cache_clear()


def test_the_admin_lists_each_worker_with_its_memory_and_loaded_models(admin_client):
    from media_jobs.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(
        name="gpu24@host#7", hostname="gpu24@host", queues=["gpu-24", "gpu-16"],
        device="cuda:0 Test Card", vram_total_gb=24.0, vram_free_gb=9.5,
        loaded=[{"key": "sdxl-base", "need_bytes": 1, "policy": "gpu", "uses": 3,
                 "last_used": 1.0}],
    )  # fmt: skip

    response = admin_client.get("/admin/media_jobs/workerheartbeat/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "cuda:0 Test Card" in html
    assert "sdxl-base (gpu)" in html
    assert "gpu-24, gpu-16" in html


def test_a_worker_preloads_the_models_it_is_told_and_skips_what_it_cannot(
    store, caplog
):
    from media_jobs.heartbeat import preload

    MODEL_CACHE.clear()
    try:
        done = preload(["dlib", FACES, "no-such-model"])
        loaded = [entry["key"] for entry in MODEL_CACHE.loaded()]
    finally:
        MODEL_CACHE.clear()

    # dlib is embedded; the InsightFace pack is not in this store.
    assert done == ["dlib"]
    assert loaded == ["dlib"]
    assert "preloading insightface-buffalo-l failed" in caplog.text
    assert "preloading no-such-model failed" in caplog.text
    assert "'no-such-model' is not in the registry" in caplog.text


def test_a_pull_records_the_commit_its_branch_resolved_to(store, hub):
    spec = ModelSpec.objects.get(key=FACES)
    assert spec.revision == "main"

    _run("pull", FACES, "--quiet")

    spec.refresh_from_db()
    assert spec.revision == hub.commit
    assert len(hub.commit) == 40


def test_sync_never_changes_what_says_which_outputs_a_model_made():
    ModelSpec.objects.filter(key="sdxl-base").update(engine="my-sdxl", kind="scene")

    sync_models(reset=True)

    spec = ModelSpec.objects.get(key="sdxl-base")
    assert (spec.engine, spec.kind) == ("my-sdxl", "scene")


def test_verify_of_the_whole_store_counts_a_damaged_manifest(store, hub):
    _run("pull", FACES, "--quiet")
    (store / FACES / "studio-manifest.json").write_text("{not json")

    out = StringIO()
    with pytest.raises(CommandError, match="1 model\\(s\\) failed verification"):
        call_command("models", "verify", stdout=out)
    assert FACES in out.getvalue()


def test_only_models_that_make_pictures_are_offered_for_scenes(store, settings):
    from projects.scene_engines import engines
    from projects.storyboards import available_models

    settings.STUDIO_SCENE_ENGINES = ["tests.engines:DriftingEngine"]
    engines.cache_clear()
    ModelSpec.objects.create(
        key="face-helper", name="A face model", kind=ModelSpec.Kind.FACES,
        engine="drift-test", revision="1", quality=9,
    )  # fmt: skip
    try:
        assert "face-helper" not in {m.key for m in available_models()}
    finally:
        engines.cache_clear()


def test_an_api_model_names_only_a_studio_api_key_setting(settings):
    from media_jobs.registry import api_key_present

    spec = ModelSpec(key="x", api_key_setting="SECRET_KEY", location="api")
    assert not api_key_present(spec)  # SECRET_KEY is set, but not an API key
    spec.api_key_setting = "STUDIO_SUNO_API_KEY"
    settings.STUDIO_SUNO_API_KEY = "s-1"
    assert api_key_present(spec)


def test_the_reconciler_forgets_workers_silent_for_ten_stale_windows(settings):
    from datetime import timedelta

    from django.utils import timezone

    from media_jobs.models import WorkerHeartbeat
    from media_jobs.reconciler import forget_silent_workers

    now = timezone.now()
    window = settings.STUDIO_HEARTBEAT_STALE_S
    for name, age in (("quiet#1", 2 * window), ("killed#2", 11 * window)):
        WorkerHeartbeat.objects.create(
            name=name, hostname=name, last_seen=now - timedelta(seconds=age)
        )

    assert forget_silent_workers() == 1
    assert list(WorkerHeartbeat.objects.values_list("name", flat=True)) == ["quiet#1"]


def test_a_model_in_a_live_workers_own_store_counts_as_installed(store, settings):
    from media_jobs.models import WorkerHeartbeat
    from projects.scene_engines import engines
    from projects.storyboards import available_models

    settings.STUDIO_SCENE_ENGINES = ["tests.engines:DriftingEngine"]
    engines.cache_clear()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    spec = ModelSpec.objects.create(
        key="far-gen", name="On the GPU host only", kind=ModelSpec.Kind.VIDEO,
        engine="drift-test", revision="1", vram_gb=8, location="local",
        repo="studio/far-gen", files=["*.bin"], quality=7, speed=3,
    )  # fmt: skip
    try:
        assert state(spec) == "missing"
        # The 8 GB card's worker holds it in its own store.
        WorkerHeartbeat.objects.create(
            name="gpu8@far#1", hostname="gpu8@far", queues=["gpu-8"],
            installed=["far-gen"],
        )  # fmt: skip
        assert state(spec) == "on 1 worker"
        assert "far-gen" in {m.key for m in available_models()}
        # A worker holding it on a queue too small for it does not count.
        WorkerHeartbeat.objects.filter(name="gpu8@far#1").update(queues=["cpu"])
        assert "far-gen" not in {m.key for m in available_models()}
    finally:
        engines.cache_clear()


def test_a_pull_stopped_by_the_time_limit_says_so_and_the_next_pull_goes_on(
    admin_user, store, hub, settings, django_capture_on_commit_callbacks
):
    """The worker's soft time limit arrives as Celery delivers it, an
    exception raised by a signal in the task's thread, half-way through a
    slow download."""
    import signal

    from celery.exceptions import SoftTimeLimitExceeded

    from media_jobs.model_jobs import start_pull

    settings.CELERY_TASK_ALWAYS_EAGER = True
    spec = ModelSpec.objects.get(key=FACES)
    hub.slow = 0.05  # per 16 KiB: the pack takes seconds to arrive

    def time_is_up(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, time_is_up)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = start_pull(spec, admin_user)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "ran past this worker's time limit" in job.error
    assert f"python manage.py models pull {FACES}" in job.error
    assert state(spec) == "missing"

    hub.slow = 0.0
    with django_capture_on_commit_callbacks(execute=True):
        again = start_pull(spec, admin_user)
    again.refresh_from_db()
    assert again.status == Job.Status.SUCCEEDED, again.error
    assert state(spec) == "installed"
