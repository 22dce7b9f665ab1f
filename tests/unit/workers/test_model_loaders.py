"""Loading models from the store: a tiny random-weight Stable Diffusion pipeline
is built here (as diffusers' own tests do in ``get_dummy_components``, with a
tokenizer made from a ``tokenizers`` vocabulary), served by the fake hub
(tests/hub_server.py), pulled into a temporary store by the real
``huggingface_hub`` code, loaded through the ModelCache on a CPU plan and run
end to end. Nothing is downloaded from anywhere else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub_server import HubServer
from tests.tiny_models import tiny_sd_pipeline
from workers.modelstore.cache import ModelCache
from workers.modelstore.loaders import load_diffusers, load_model, need_bytes
from workers.modelstore.memory import MemoryPlan, Policy, choose_policy
from workers.modelstore.store import (
    MANIFEST,
    ModelMissing,
    StoreError,
    import_dir,
    pull,
    require,
)

REPO = "studio-tests/tiny-sd"
KEY = "tiny-sd"
CPU_PLAN = MemoryPlan(Policy.CPU, False, False, "tests run on the CPU")
GPU_PLAN = MemoryPlan(Policy.GPU, False, False, "a GPU plan, placed on the CPU")
PROMPT = "a red fox in the snow"


@pytest.fixture(autouse=True)
def _online_to_the_fake_hub_only(monkeypatch):
    """As in test_modelstore: the fake hub on 127.0.0.1 is the only hub, so
    HF_HUB_OFFLINE is switched off here and any configured endpoint or token is
    dropped."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-sd")
    tiny_sd_pipeline().save_pretrained(folder)
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def _render(pipe: Any, seed: int) -> Any:
    import torch

    generator = torch.Generator("cpu").manual_seed(seed)
    return pipe(
        PROMPT,
        num_inference_steps=2,
        height=32,
        width=32,
        generator=generator,
        output_type="pil",
    ).images[0]


def test_a_pulled_pipeline_loads_through_the_cache_on_the_cpu_and_renders(
    saved_pipeline, hub, store
):
    import numpy as np
    import torch

    files = _files(saved_pipeline)
    assert "model_index.json" in files
    hub.add_repo(REPO, files)
    model = pull(
        store,
        KEY,
        repo_id=REPO,
        revision="main",
        allow_patterns=None,
        endpoint=hub.url,
        progress=False,
    )
    need = need_bytes(model.folder)
    weights = sum(
        len(data) for path, data in files.items() if path.endswith(".safetensors")
    )
    assert need == weights > 0
    assert choose_policy(need, None).policy is Policy.CPU

    cache = ModelCache(free_memory=lambda: None)  # a worker without a GPU
    plans: list[MemoryPlan] = []

    def load(plan: MemoryPlan) -> object:
        plans.append(plan)
        return load_model(store, KEY, "diffusers", plan)

    pipe: Any = cache.get(KEY, load, need_bytes=need)
    assert [p.policy for p in plans] == [Policy.CPU]
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert pipe.unet.device.type == "cpu"
    assert pipe.unet.dtype == torch.float32
    pipe.set_progress_bar_config(disable=True)

    image = _render(pipe, seed=1)
    assert image.size == (32, 32)
    again = _render(pipe, seed=1)
    other = _render(pipe, seed=2)
    assert np.array_equal(np.asarray(image), np.asarray(again))
    assert not np.array_equal(np.asarray(image), np.asarray(other))

    assert cache.get(KEY, load, need_bytes=need) is pipe
    assert len(plans) == 1  # the hit did not load again


def test_a_gpu_plan_loads_in_half_precision(saved_pipeline, tmp_path):
    import torch

    store = tmp_path / "store"
    import_dir(store, KEY, saved_pipeline)
    # apply_plan moves a GPU plan's pipeline to `device`; "cpu" stands in for
    # the card so the dtype choice is checked without one.
    pipe: Any = load_diffusers(require(store, KEY).folder, GPU_PLAN, device="cpu")
    assert pipe.unet.dtype == torch.float16
    assert pipe.text_encoder.dtype == torch.float16


def test_a_missing_model_names_the_pull_command(tmp_path):
    with pytest.raises(ModelMissing, match=f"python manage.py models pull {KEY}"):
        load_model(tmp_path / "store", KEY, "diffusers", CPU_PLAN)


def test_a_folder_without_model_index_is_a_clear_error(tmp_path):
    folder = tmp_path / "not-a-pipeline"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text("{}")
    with pytest.raises(StoreError, match="no model_index.json"):
        load_diffusers(folder, CPU_PLAN)

    with pytest.raises(StoreError, match="not a folder"):
        load_diffusers(tmp_path / "nowhere", CPU_PLAN)


def test_an_installed_model_without_model_index_is_a_clear_error(tmp_path):
    source = tmp_path / "checkpoint"
    source.mkdir()
    (source / "model.safetensors").write_bytes(b"\0" * 64)
    store = tmp_path / "store"
    import_dir(store, "flat", source)
    with pytest.raises(StoreError, match="no model_index.json"):
        load_model(store, "flat", "diffusers", CPU_PLAN)


def test_a_damaged_pipeline_is_a_store_error_naming_verify(saved_pipeline, tmp_path):
    pytest.importorskip("diffusers")
    store = tmp_path / "store"
    import_dir(store, KEY, saved_pipeline)
    folder = require(store, KEY).folder
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"junk")
    with pytest.raises(StoreError, match=f"python manage.py models verify {KEY}"):
        load_model(store, KEY, "diffusers", CPU_PLAN)


def test_an_unknown_provider_or_loading_path_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="'onnx'.*diffusers, transformers"):
        load_model(tmp_path, KEY, "onnx", CPU_PLAN)
    with pytest.raises(ValueError, match="single_file"):
        load_model(tmp_path, KEY, "diffusers", CPU_PLAN, params={"single_file": True})
    with pytest.raises(ValueError, match="dtype"):
        load_diffusers(tmp_path, CPU_PLAN, dtype="int3")


def test_need_bytes_counts_the_weight_files_only(tmp_path):
    sizes = {
        "unet/model.safetensors": 100,
        "text_encoder/pytorch_model.bin": 20,
        "transformer/model-Q4.gguf": 3,
        "vae/weights.pth": 4000,
        "model_index.json": 50_000,
        "unet/config.json": 600,
        "README.md": 700,
        MANIFEST: 800,
        ".cache/huggingface/download/x.safetensors": 9000,
    }
    for rel, size in sizes.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    assert need_bytes(tmp_path) == 100 + 20 + 3 + 4000
    with pytest.raises(StoreError):
        need_bytes(tmp_path / "nowhere")
