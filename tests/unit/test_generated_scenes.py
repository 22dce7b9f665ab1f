"""Scenes made by models from the model store, through the whole render: a
tiny random-weight Stable Diffusion pipeline (an image model: its still is
moved by the renderer) and a tiny Stable Video Diffusion pipeline (a video
model: its clip is played) are imported into the studio's store, registered
in the model registry and run in-process on the CPU, loaded once by the
process's model cache. A model missing from the store fails the render with
the command that pulls it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from media_jobs.files import local_file
from media_jobs.heartbeat import MODEL_CACHE
from media_jobs.models import CacheEntry, Job, ModelSpec
from projects.models import Project, Scene, Shot
from projects.pipeline import plan_now, render_now
from projects.uploads import add_asset_from_path
from tests.factories import ProjectFactory
from tests.tiny_models import tiny_sd_pipeline, tiny_svd_pipeline
from workers.modelstore.store import import_dir
from workers.probe import StreamInfo, probe_media

IMAGE_PARAMS = {"steps": 2, "width": 32, "height": 32, "multiple": 8, "denoise": 0.6}
VIDEO_PARAMS = {
    "steps": 2, "width": 48, "height": 24, "multiple": 8, "fps": 6, "max_frames": 7,
}  # fmt: skip


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folders = {}
    for key, build in (("tiny-sd", tiny_sd_pipeline), ("tiny-svd", tiny_svd_pipeline)):
        folders[key] = tmp_path_factory.mktemp(key)
        build().save_pretrained(folders[key])
    return folders


@pytest.fixture
def store(settings, tmp_path) -> Iterator[Path]:
    settings.STUDIO_MODEL_STORE = tmp_path / "store"
    MODEL_CACHE.clear()
    yield settings.STUDIO_MODEL_STORE
    MODEL_CACHE.clear()


@pytest.fixture
def models(db) -> None:
    ModelSpec.objects.create(
        key="tiny-sd", name="Tiny SD", kind=ModelSpec.Kind.IMAGE, engine="diffusers",
        provider="diffusers", location=ModelSpec.Location.LOCAL, revision="1",
        vram_gb=0.0, cpu=True, params=IMAGE_PARAMS, quality=9, speed=1,
    )  # fmt: skip
    ModelSpec.objects.create(
        key="tiny-svd", name="Tiny SVD", kind=ModelSpec.Kind.VIDEO, engine="diffusers",
        provider="diffusers", location=ModelSpec.Location.LOCAL, revision="1",
        vram_gb=0.0, cpu=True, params=VIDEO_PARAMS, quality=8, speed=1,
        enabled=False,
    )  # fmt: skip


@pytest.fixture
def project(alice, sample_files) -> Project:
    project = ProjectFactory(
        owner=alice, target_duration=6.0, preset="preview",
        review_policy=Project.ReviewPolicy.CONTINUE,
    )  # fmt: skip
    add_asset_from_path(project, sample_files["astronaut"])
    add_asset_from_path(project, sample_files["hopper"])
    add_asset_from_path(project, sample_files["song"])
    return project


def _probe(name: str) -> tuple[float, StreamInfo]:
    """The stored file's duration and its video stream."""
    with local_file(name) as path:
        info = probe_media(path)
    (stream,) = info.of_kind("video")
    return info.duration or 0.0, stream


def _scenes(job: Job) -> list[Scene]:
    return list(Scene.objects.filter(job=job).order_by("index"))


def test_an_installed_image_model_paints_every_scene_and_the_render_moves_its_stills(
    project, store, models, saved_models, settings
):
    settings.STUDIO_CONSISTENCY_TRIES = 2
    import_dir(store, "tiny-sd", saved_models["tiny-sd"])

    job = render_now(project, model="tiny-sd")

    assert job.status == Job.Status.SUCCEEDED, job.error
    scenes = _scenes(job)
    assert len(scenes) >= 2
    for scene in scenes:
        assert scene.model == "tiny-sd"
        assert scene.clip.endswith("/still.png") and scene.clip != scene.image.file.name
        assert default_storage.exists(scene.clip) and default_storage.exists(
            scene.thumbnail
        )
        entry = CacheEntry.objects.get(fingerprint=scene.fingerprint)
        assert (entry.model_key, entry.engine_version) == ("tiny-sd", "diffusers-1")
    # The gate looked at the painted stills of the character's scenes (random
    # weights paint no face), made them again with a new seed and flagged them.
    gated = [s for s in scenes if s.character_id]
    assert gated
    assert all(s.review == Scene.Review.FLAGGED and s.tries == 2 for s in gated)
    duration, _ = _probe(project.renders.get(job=job).file)
    assert duration == pytest.approx(6.0, abs=0.1)
    # One pipeline, kept between scenes (the face models share the cache).
    (loaded,) = [m for m in MODEL_CACHE.loaded() if m["key"] == "tiny-sd"]
    assert loaded["uses"] >= len(scenes)

    # A second render finds every scene in the cache.
    again = render_now(project, model="tiny-sd")
    assert again.status == Job.Status.SUCCEEDED, again.error
    assert all(s.cached for s in _scenes(again))


def test_the_planner_chooses_an_installed_image_model_for_quality(
    project, store, models, saved_models
):
    from projects.storyboards import available_models

    assert {m.key for m in available_models()} == {"photo"}  # nothing installed
    import_dir(store, "tiny-sd", saved_models["tiny-sd"])
    assert {m.key for m in available_models()} == {"photo", "tiny-sd"}

    plan_now(project, seed=3)
    assert set(
        Shot.objects.filter(storyboard__project=project).values_list("model", flat=True)
    ) == {"tiny-sd"}
    plan_now(project, seed=3, preference="speed")
    assert set(
        Shot.objects.filter(storyboard__project=project).values_list("model", flat=True)
    ) == {"photo"}


def test_a_video_model_makes_each_scene_a_clip_the_render_plays(
    project, store, models, saved_models, settings
):
    settings.STUDIO_CONSISTENCY_TRIES = 1
    ModelSpec.objects.filter(key="tiny-svd").update(enabled=True)
    import_dir(store, "tiny-svd", saved_models["tiny-svd"])

    job = render_now(project, model="tiny-svd", duration=4.0)

    assert job.status == Job.Status.SUCCEEDED, job.error
    scenes = _scenes(job)
    for scene in scenes:
        assert scene.clip.endswith("/clip.mp4")
        _, stream = _probe(scene.clip)
        assert (stream.width, stream.height) == (48, 24)
    duration, _ = _probe(project.renders.get(job=job).file)
    assert duration == pytest.approx(4.0, abs=0.1)


def test_a_model_missing_from_the_store_fails_the_render_with_the_pull_command(
    project, store, models
):
    job = render_now(project, model="tiny-sd")

    assert job.status == Job.Status.FAILED
    assert "python manage.py models pull tiny-sd" in job.error
    assert not any(s.clip and s.clip != s.image.file.name for s in _scenes(job))
    assert not CacheEntry.objects.filter(kind=CacheEntry.Kind.SCENE).exists()
    assert not project.renders.filter(job=job).exists()


def test_a_worker_preloads_an_installed_scene_model_into_its_cache(
    project, store, models, saved_models, caplog, settings
):
    from media_jobs.heartbeat import preload

    assert preload(["tiny-sd"]) == []  # not installed yet: logged, skipped
    assert "python manage.py models pull tiny-sd" in caplog.text
    import_dir(store, "tiny-sd", saved_models["tiny-sd"])

    assert preload(["tiny-sd", "photo"]) == ["tiny-sd"]
    (loaded,) = [m for m in MODEL_CACHE.loaded() if m["key"] == "tiny-sd"]
    assert loaded["policy"] == "cpu" and loaded["uses"] == 1
    assert "'photo' has no weights to preload" in caplog.text

    # The scenes take the preloaded pipeline: no second load.
    settings.STUDIO_CONSISTENCY_TRIES = 1
    loads = MODEL_CACHE.evictions.count("tiny-sd")
    job = render_now(project, model="tiny-sd")
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert MODEL_CACHE.evictions.count("tiny-sd") == loads
    (loaded,) = [m for m in MODEL_CACHE.loaded() if m["key"] == "tiny-sd"]
    assert loaded["uses"] > 1


def test_a_model_no_task_takes_from_the_cache_is_not_preloaded(db, store, caplog):
    """The speech emotion classifier (transformers) would only hold memory:
    preloading it is refused with the reason."""
    from media_jobs.heartbeat import preload

    assert preload(["speech-emotion"]) == []
    assert "is not used by any task of this studio yet" in caplog.text
    assert "speech-emotion" not in {m["key"] for m in MODEL_CACHE.loaded()}


def test_a_cloud_image_model_is_offered_once_keyed_and_paints_the_scenes(
    project, settings, tmp_path
):
    """Nano Banana Pro (the Gemini image API) against a local stand-in of the
    service: offered once its key is set, chosen for quality, asked once per
    scene with the scene's photo, its pictures moved by the renderer."""
    import numpy as np
    from PIL import Image

    from projects.storyboards import available_models
    from tests.cloud_servers import FakeGemini

    def png(colour: tuple[int, int, int]) -> bytes:
        path = tmp_path / "painted.png"
        Image.fromarray(np.full((36, 64, 3), colour, dtype=np.uint8)).save(path)
        return path.read_bytes()

    ModelSpec.objects.filter(key="nano-banana-pro").update(enabled=True)
    fake = FakeGemini("gemini-test-key", png((30, 160, 90)), png((255, 0, 0)))
    try:
        settings.STUDIO_GEMINI_BASE_URL = f"{fake.url}/v1beta"
        assert "nano-banana-pro" not in {m.key for m in available_models()}
        settings.STUDIO_GEMINI_API_KEY = "gemini-test-key"
        assert "nano-banana-pro" in {m.key for m in available_models()}

        job = render_now(project)  # the planner takes the best for quality
    finally:
        fake.close()

    assert job.status == Job.Status.SUCCEEDED, job.error
    scenes = _scenes(job)
    assert {s.model for s in scenes} == {"nano-banana-pro"}
    assert all(s.clip.endswith("/still.png") for s in scenes)
    asked = fake.api_requests()
    assert len(asked) >= len(scenes)  # the gate asks again for flagged scenes
    first = asked[0]
    assert first.path == "/v1beta/models/gemini-3-pro-image-preview:generateContent"
    assert first.headers["x-goog-api-key"] == "gemini-test-key"
    parts = first.body["contents"][0]["parts"]
    assert any("inline_data" in p or "inlineData" in p for p in parts)


def test_an_admin_edit_of_a_models_params_makes_its_scenes_again(
    project, store, models, saved_models, settings
):
    settings.STUDIO_CONSISTENCY_TRIES = 1
    import_dir(store, "tiny-sd", saved_models["tiny-sd"])
    first = render_now(project, model="tiny-sd")
    assert first.status == Job.Status.SUCCEEDED, first.error
    reloads = MODEL_CACHE.evictions.count("tiny-sd")

    # A running param: the scenes are made again with the loaded pipeline.
    ModelSpec.objects.filter(key="tiny-sd").update(params={**IMAGE_PARAMS, "steps": 3})
    second = render_now(project, model="tiny-sd")
    assert second.status == Job.Status.SUCCEEDED, second.error
    assert not any(s.cached for s in _scenes(second))
    assert MODEL_CACHE.evictions.count("tiny-sd") == reloads

    # A loading param: the pipeline is loaded again as well.
    ModelSpec.objects.filter(key="tiny-sd").update(
        params={**IMAGE_PARAMS, "steps": 3, "dtype": "float32"}
    )
    third = render_now(project, model="tiny-sd")
    assert third.status == Job.Status.SUCCEEDED, third.error
    assert not any(s.cached for s in _scenes(third))
    assert MODEL_CACHE.evictions.count("tiny-sd") == reloads + 1


def test_a_gguf_model_is_offered_once_its_base_is_installed_and_renders(
    project, store, models, saved_models, settings, tmp_path
):
    from projects.storyboards import available_models
    from tests.unit.workers.test_model_single_file import _install, _unet_weights

    settings.STUDIO_CONSISTENCY_TRIES = 1
    ModelSpec.objects.create(
        key="tiny-sd-gguf", name="Tiny SD, GGUF UNet", kind=ModelSpec.Kind.IMAGE,
        engine="diffusers", provider="diffusers", location=ModelSpec.Location.LOCAL,
        revision="1", vram_gb=0.0, cpu=True, quality=10, speed=1,
        params={**IMAGE_PARAMS, "gguf": True, "base": "tiny-sd"},
    )  # fmt: skip
    weights = _unet_weights(saved_models["tiny-sd"], 11)
    _install(store, "tiny-sd-gguf", {"unet.gguf": weights}, tmp_path)
    assert "tiny-sd-gguf" not in {m.key for m in available_models()}  # no base

    import_dir(store, "tiny-sd", saved_models["tiny-sd"])
    assert {"tiny-sd", "tiny-sd-gguf"} <= {m.key for m in available_models()}

    job = render_now(project, model="tiny-sd-gguf")
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert all(s.clip.endswith("/still.png") for s in _scenes(job))


def test_a_single_file_model_counts_only_where_its_base_is_on_the_same_worker(
    db, store
):
    from media_jobs.heartbeat import installed_on_workers
    from media_jobs.models import WorkerHeartbeat
    from projects.storyboards import usable

    spec = ModelSpec.objects.create(
        key="tiny-sd-gguf", name="Tiny SD, GGUF UNet", kind=ModelSpec.Kind.IMAGE,
        engine="diffusers", provider="diffusers", location=ModelSpec.Location.LOCAL,
        revision="1", vram_gb=6.0, params={"gguf": True, "base": "tiny-sd"},
    )  # fmt: skip
    for host, held in (("a", ["tiny-sd-gguf"]), ("b", ["tiny-sd"])):
        WorkerHeartbeat.objects.create(
            name=f"{host}#1", hostname=host, queues=["gpu-8"], installed=held
        )
    assert not usable(spec, "gpu-8", installed_on_workers())

    WorkerHeartbeat.objects.create(
        name="c#1", hostname="c", queues=["gpu-8"],
        installed=["tiny-sd", "tiny-sd-gguf"],
    )  # fmt: skip
    assert usable(spec, "gpu-8", installed_on_workers())
    assert not usable(spec, "gpu-16", installed_on_workers())
