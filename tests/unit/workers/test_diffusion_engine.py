"""The diffusion engine: tiny random-weight pipelines (a Stable Diffusion
image model and a Stable Video Diffusion image-to-video model) imported into
a temporary model store and run on the CPU through the engine, as a worker
runs them: loaded once by its model cache, seeded, stoppable, and failing
with the pull command when the model is not installed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.tiny_models import (
    tiny_flux_pipeline,
    tiny_ltx_condition_pipeline,
    tiny_sd_pipeline,
    tiny_svd_pipeline,
)
from workers.assembly.sources import probe_video
from workers.modelstore.cache import ModelCache
from workers.modelstore.memory import NoDeviceError
from workers.modelstore.store import ModelMissing, import_dir
from workers.scenes import ModelRef, SceneRequest, SceneStopped
from workers.scenes.diffusion import DiffusionEngine, frame_count, generation_size

IMAGE_PARAMS = {"steps": 2, "width": 32, "height": 32, "multiple": 8}
VIDEO_PARAMS = {
    "steps": 2, "width": 48, "height": 24, "multiple": 8, "fps": 6,
    "max_frames": 7, "motion_bucket_id": 127,
}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding tiny-sd and tiny-svd, imported as an operator would."""
    root = tmp_path_factory.mktemp("store")
    builders = (
        ("tiny-sd", tiny_sd_pipeline),
        ("tiny-svd", tiny_svd_pipeline),
        ("tiny-ltx", tiny_ltx_condition_pipeline),
        ("tiny-flux", tiny_flux_pipeline),
    )
    for key, build in builders:
        folder = tmp_path_factory.mktemp(key)
        build().save_pretrained(folder)
        import_dir(root, key, folder)
    return root


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo with structure (a gradient and a block), not a flat colour."""
    x = np.linspace(0, 255, 96, dtype=np.float32)
    pixels = np.stack(
        [np.tile(x, (64, 1)), np.tile(x[::-1], (64, 1)), np.full((64, 96), 90.0)],
        axis=-1,
    ).astype(np.uint8)
    pixels[16:40, 30:60] = (250, 240, 20)
    path = tmp_path_factory.mktemp("photos") / "portrait.png"
    Image.fromarray(pixels).save(path)
    return path


def _cpu_cache() -> ModelCache:
    return ModelCache(free_memory=lambda: None)  # a worker without a GPU


def _request(
    tmp_path: Path,
    photo: Path,
    ref: ModelRef,
    *,
    seed: int = 5,
    prompt: str = "a red fox in the snow",
    frames: int = 24,
    name: str = "out",
    **extra,
) -> SceneRequest:
    out = tmp_path / name
    out.mkdir()
    return SceneRequest(
        index=0, image=photo, out_dir=out, width=64, height=36, fps=24,
        frames=frames, move="push_in", seed=seed, prompt=prompt,
        negative_prompt="blurry", model=ref, **extra,
    )  # fmt: skip


def _image_ref(store: Path, **params) -> ModelRef:
    return ModelRef(
        key="tiny-sd", task="image", store=store, params={**IMAGE_PARAMS, **params},
        cpu=True,
    )  # fmt: skip


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"), dtype=np.int16)


def test_generation_size_keeps_the_models_area_in_the_videos_aspect():
    assert generation_size(1920, 1080, {"width": 1024, "height": 1024}) == (1360, 768)
    assert generation_size(1080, 1920, {"width": 1024, "height": 1024}) == (768, 1360)
    assert generation_size(64, 36, IMAGE_PARAMS) == (40, 24)
    with pytest.raises(ValueError, match="positive"):
        generation_size(64, 36, {"width": 0})


@pytest.mark.parametrize(
    ("seconds", "params", "expected"),
    [
        (1.0, {"fps": 6, "max_frames": 25}, 6),
        (10.0, {"fps": 6, "max_frames": 25}, 25),
        (2.0, {"fps": 24, "max_frames": 161, "frame_step": 8}, 49),
        (60.0, {"fps": 24, "max_frames": 161, "frame_step": 8}, 161),
        (60.0, {"fps": 16, "max_frames": 83, "frame_step": 4}, 81),
        (0.1, {"fps": 16, "max_frames": 81, "frame_step": 4}, 5),
    ],
)
def test_frame_count_covers_the_scene_within_the_models_limits(
    seconds, params, expected
):
    assert frame_count(seconds, params) == expected


def test_an_image_model_paints_a_seeded_still_from_the_photo(store, photo, tmp_path):
    engine = DiffusionEngine(_cpu_cache())
    ref = _image_ref(store, denoise=0.6)
    reports: list[float] = []
    first = engine.render(
        _request(
            tmp_path, photo, ref, name="a", on_progress=lambda f, m: reports.append(f)
        )
    )
    again = engine.render(_request(tmp_path, photo, ref, name="b"))
    other_seed = engine.render(_request(tmp_path, photo, ref, name="c", seed=6))

    assert first.clip is None and first.still is not None and first.preview
    with Image.open(first.still) as still:
        assert still.size == (40, 24)  # the model's area in the video's 16:9
    with Image.open(first.preview) as preview:
        assert preview.size[0] == 320
    assert np.array_equal(_pixels(first.still), _pixels(again.still))
    assert not np.array_equal(_pixels(first.still), _pixels(other_seed.still))
    # Progress rises with the denoising steps and ends at the preview.
    assert reports == sorted(reports) and len(reports) >= 3
    # Loaded once, served from the cache for the next two scenes.
    (loaded,) = engine.cache.loaded()
    assert loaded["key"] == "tiny-sd" and loaded["uses"] == 3


def test_the_photo_carries_into_the_still_unless_denoise_is_one(store, photo, tmp_path):
    engine = DiffusionEngine(_cpu_cache())
    flat = tmp_path / "flat.png"
    Image.new("RGB", (96, 64), (10, 10, 10)).save(flat)
    light = engine.render(
        _request(tmp_path, photo, _image_ref(store, denoise=0.3), name="a")
    )
    dark = engine.render(
        _request(tmp_path, flat, _image_ref(store, denoise=0.3), name="b")
    )
    assert np.abs(_pixels(light.still) - _pixels(dark.still)).mean() > 1

    painted = _image_ref(store, denoise=1.0)
    one = engine.render(_request(tmp_path, photo, painted, name="c"))
    two = engine.render(_request(tmp_path, flat, painted, name="d"))
    assert np.array_equal(_pixels(one.still), _pixels(two.still))


@pytest.mark.parametrize("denoise", [0.75, 1.0])
def test_flux_paints_in_the_videos_aspect_from_the_photo_or_the_prompt(
    store, photo, tmp_path, denoise
):
    engine = DiffusionEngine(_cpu_cache())
    ref = ModelRef(
        key="tiny-flux", task="image", store=store, cpu=True,
        params={"steps": 2, "width": 32, "height": 32, "guidance": 0.0,
                "denoise": denoise},
    )  # fmt: skip
    output = engine.render(_request(tmp_path, photo, ref))
    with Image.open(output.still) as still:
        assert still.size == generation_size(64, 36, ref.params) == (48, 32)


def test_a_video_model_animates_the_photo_into_a_clip_spanning_the_scene(
    store, photo, tmp_path
):
    engine = DiffusionEngine(_cpu_cache())
    ref = ModelRef(
        key="tiny-svd", task="video", store=store, params=VIDEO_PARAMS, cpu=True
    )
    # A 2 s scene: the model's 7 frames at most, played at 3.5 fps to span it.
    output = engine.render(_request(tmp_path, photo, ref, frames=48))

    assert output.still is None and output.clip is not None and output.preview
    stream, _ = probe_video(output.clip)
    assert (stream.width, stream.height) == (48, 24)
    assert stream.frames == 7
    assert stream.fps == pytest.approx(3.5, abs=0.01)

    # A short scene gets fewer frames at the model's own rate.
    short = engine.render(_request(tmp_path, photo, ref, frames=12, name="short"))
    stream, _ = probe_video(short.clip)
    assert stream.frames == 3 and stream.fps == pytest.approx(6.0, abs=0.01)


def test_a_gguf_model_paints_inside_its_base_pipeline(store, photo, tmp_path):
    """A GGUF-quantized UNet (other weights than the base's) replaces the
    installed tiny-sd's UNet: the still differs from the base's own."""
    from tests.unit.workers.test_model_single_file import _install, _unet_weights

    _install(
        store, "tiny-sd-gguf", {"unet.gguf": _unet_weights(store / "tiny-sd", 11)},
        tmp_path,
    )  # fmt: skip
    engine = DiffusionEngine(_cpu_cache())
    quantized = ModelRef(
        key="tiny-sd-gguf", task="image", store=store, cpu=True,
        params={**IMAGE_PARAMS, "denoise": 1.0, "gguf": True, "base": "tiny-sd"},
    )  # fmt: skip
    own = engine.render(_request(tmp_path, photo, _image_ref(store, denoise=1.0)))
    painted = engine.render(_request(tmp_path, photo, quantized, name="gguf"))

    with Image.open(painted.still) as still:
        assert still.size == (40, 24)
    assert not np.array_equal(_pixels(own.still), _pixels(painted.still))
    assert {m["key"] for m in engine.cache.loaded()} == {"tiny-sd", "tiny-sd-gguf"}


def test_an_ltx_clip_ends_on_the_scenes_end_keyframe(store, photo, tmp_path):
    """LTX-Video takes the photo and the end keyframe as conditions on the
    first and last frames: another end keyframe makes another clip."""
    engine = DiffusionEngine(_cpu_cache())
    ref = ModelRef(
        key="tiny-ltx", task="video", store=store, cpu=True,
        params={
            "steps": 2, "width": 32, "height": 32, "multiple": 32, "fps": 24,
            "max_frames": 9, "frame_step": 8, "guidance": 1.0, "keyframes": True,
        },
    )  # fmt: skip
    ends = []
    for colour in ((0, 0, 220), (240, 240, 240)):
        end = tmp_path / f"end-{colour[0]}.png"
        Image.new("RGB", (64, 64), colour).save(end)
        ends.append(end)
    clips = [
        engine.render(_request(tmp_path, photo, ref, name=f"c{n}", end_image=end))
        for n, end in enumerate(ends)
    ]

    for output in clips:
        stream, _ = probe_video(output.clip)
        assert stream.frames == 9 and (stream.width, stream.height) == (32, 32)
    assert clips[0].preview is not None and clips[1].preview is not None
    assert not np.array_equal(_pixels(clips[0].preview), _pixels(clips[1].preview))


def test_a_video_model_without_keyframes_refuses_an_end_keyframe(
    store, photo, tmp_path
):
    engine = DiffusionEngine(_cpu_cache())
    ref = ModelRef(
        key="tiny-svd", task="video", store=store, params=VIDEO_PARAMS, cpu=True
    )
    with pytest.raises(ValueError, match="cannot end a clip on a keyframe"):
        engine.render(_request(tmp_path, photo, ref, end_image=photo))
    assert not (tmp_path / "out" / "clip.mp4").exists()


def test_a_missing_model_names_the_pull_command(tmp_path, photo):
    engine = DiffusionEngine(_cpu_cache())
    ref = ModelRef(key="sdxl-base", task="image", store=tmp_path / "empty", cpu=True)
    with pytest.raises(ModelMissing, match="python manage.py models pull sdxl-base"):
        engine.render(_request(tmp_path, photo, ref))
    assert engine.cache.loaded() == []


def test_a_model_that_needs_a_gpu_is_refused_on_a_host_without_one(
    store, photo, tmp_path
):
    engine = DiffusionEngine(_cpu_cache())
    ref = ModelRef(
        key="tiny-sd", task="image", store=store, params=IMAGE_PARAMS, cpu=False
    )
    with pytest.raises(NoDeviceError):
        engine.render(_request(tmp_path, photo, ref))


def test_a_stop_ends_the_scene_between_denoising_steps(store, photo, tmp_path):
    engine = DiffusionEngine(_cpu_cache())
    stop = threading.Event()
    steps: list[float] = []

    def on_progress(fraction: float, message: str) -> None:
        steps.append(fraction)
        if "painting" in message:
            stop.set()  # cancelled after the first step

    ref = _image_ref(store, steps=4, denoise=1.0)
    with pytest.raises(SceneStopped):
        engine.render(
            _request(tmp_path, photo, ref, on_progress=on_progress, stop=stop)
        )
    assert not (tmp_path / "out" / "still.png").exists()
    # The pipeline stays loaded for the next scene.
    assert [m["key"] for m in engine.cache.loaded()] == ["tiny-sd"]


def test_the_engine_refuses_a_request_without_an_image_or_video_model(
    store, photo, tmp_path
):
    engine = DiffusionEngine(_cpu_cache())
    with pytest.raises(ValueError, match="image or video model"):
        engine.render(_request(tmp_path, photo, None))  # type: ignore[arg-type]
    music = ModelRef(key="tiny-sd", task="music", store=store)
    with pytest.raises(ValueError, match="image or video model"):
        engine.render(_request(tmp_path, photo, music, name="music"))
