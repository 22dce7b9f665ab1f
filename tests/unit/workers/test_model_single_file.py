"""Loading single-file and GGUF checkpoints into their base pipeline.

The base is the tiny random-weight Stable Diffusion pipeline of
tests/tiny_models.py, imported into a temporary store. The checkpoints are its
UNet with other random weights (another seed), written by the test as one
safetensors file, and as a GGUF file made with the ``gguf`` package's writer
(the linear weights whose rows fill GGUF blocks quantized to Q8_0 and Q4_0,
the rest F16 or F32). They are saved in diffusers' key layout, which diffusers
loads without a conversion step. Nothing is downloaded: the hub is offline for
every test here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tiny_models import tiny_sd_pipeline
from workers.modelstore.loaders import load_model, load_need_bytes, need_bytes
from workers.modelstore.memory import MemoryPlan, Policy
from workers.modelstore.store import ModelMissing, StoreError, import_dir, require

BASE = "tiny-sd"
UNET = "tiny-sd-unet"
GGUF = "tiny-sd-unet-gguf"
CPU_PLAN = MemoryPlan(Policy.CPU, False, False, "tests run on the CPU")
GPU_PLAN = MemoryPlan(Policy.GPU, False, False, "a GPU plan, placed on the CPU")
SINGLE = {"single_file": True, "base": BASE}
QUANTIZED = {"gguf": True, "base": BASE}
PROMPT = "a red fox in the snow"
# GGUF quantizes blocks of 32 values along a row; the tiny UNet's feed-forward
# output layers (8 x 32) are the linear weights with whole blocks.
QUANT_BLOCK = 32


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Any attempt to reach the hub fails: loading must use the store only."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-sd")
    tiny_sd_pipeline().save_pretrained(folder)
    return folder


def _unet_weights(base_folder: Path, seed: int) -> dict[str, Any]:
    """A state dict for the base's UNet config with weights from ``seed``."""
    import diffusers
    import torch

    config = diffusers.UNet2DConditionModel.load_config(base_folder, subfolder="unet")
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel.from_config(config)
    return {
        name: t.detach().clone().contiguous() for name, t in unet.state_dict().items()
    }


def _base_unet_weights(base_folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(base_folder / "unet" / "diffusion_pytorch_model.safetensors")


def _save_safetensors(weights: dict[str, Any], path: Path) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, path)
    return path


def _quant_type(name: str, shape: tuple[int, ...]) -> Any:
    import gguf

    Q = gguf.GGMLQuantizationType
    if len(shape) != 2:
        # Biases, norms and convolutions stay unquantized, as in published
        # GGUF diffusion checkpoints: diffusers dequantizes linear layers only.
        return Q.F32
    if shape[1] % QUANT_BLOCK:
        return Q.F16
    return Q.Q4_0 if name.startswith("up_blocks") else Q.Q8_0


def _save_gguf(weights: dict[str, Any], path: Path) -> Path:
    """``weights`` as a GGUF file: each tensor under its diffusers state-dict
    name, stored as ``_quant_type`` says."""
    import gguf
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch="unet")
    for name, tensor in weights.items():
        array = tensor.numpy()
        qtype = _quant_type(name, array.shape)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, array.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, array.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def store(tmp_path: Path, base_folder: Path) -> Path:
    store = tmp_path / "store"
    import_dir(store, BASE, base_folder)
    return store


def _install(store: Path, key: str, files: dict[str, Any], tmp_path: Path) -> Path:
    """Install the files ``{name: weights}`` as the model ``key``; a name ending
    in .gguf is written as GGUF, one ending in .safetensors as safetensors, and
    any other name gets the bytes it maps to."""
    source = tmp_path / "source" / key
    for name, content in files.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif name.endswith(".gguf"):
            _save_gguf(content, path)
        else:
            _save_safetensors(content, path)
    return import_dir(store, key, source).folder


def _render(pipe: Any, seed: int = 1) -> Any:
    import numpy as np
    import torch

    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        PROMPT,
        num_inference_steps=2,
        height=32,
        width=32,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    ).images[0]
    return np.asarray(image)


def _dequantized(parameter: Any) -> Any:
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    if isinstance(parameter, GGUFParameter):
        return dequantize_gguf_tensor(parameter).float()
    return parameter.detach().float()


# -- single-file checkpoints ------------------------------------------------------


def test_a_single_file_unet_replaces_the_base_pipelines_unet_and_renders(
    store, base_folder, tmp_path
):
    import numpy as np
    import torch

    weights = _unet_weights(base_folder, seed=7)
    base_unet = _base_unet_weights(base_folder)
    assert any(not torch.equal(weights[n], base_unet[n]) for n in weights)
    _install(store, UNET, {"unet-seed7.safetensors": weights}, tmp_path)

    pipe: Any = load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE)

    assert type(pipe).__name__ == "StableDiffusionPipeline"
    loaded = pipe.unet.state_dict()
    assert loaded.keys() == weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(loaded[name], tensor), name
    assert pipe.unet.dtype == torch.float32
    assert pipe.unet.device.type == "cpu"
    # The rest of the pipeline is the base's own.
    base: Any = load_model(store, BASE, "diffusers", CPU_PLAN)
    for name, tensor in base.vae.state_dict().items():
        assert torch.equal(pipe.vae.state_dict()[name], tensor), name

    image = _render(pipe)
    assert image.shape == (32, 32, 3)
    assert np.isfinite(image).all()
    assert np.array_equal(image, _render(pipe))
    # Same prompt, seed and everything else: only the UNet differs.
    assert not np.allclose(image, _render(base))


def test_a_gpu_plan_loads_the_single_file_in_half_precision(
    store, base_folder, tmp_path
):
    import torch

    weights = _unet_weights(base_folder, seed=7)
    _install(store, UNET, {"unet.safetensors": weights}, tmp_path)
    # apply_plan moves a GPU plan's pipeline to `device`; "cpu" stands in for
    # the card so the dtype choice is checked without one.
    pipe: Any = load_model(
        store, UNET, "diffusers", GPU_PLAN, params=SINGLE, device="cpu"
    )
    assert pipe.unet.dtype == torch.float16
    assert pipe.text_encoder.dtype == torch.float16
    name = "conv_in.weight"
    assert torch.equal(pipe.unet.state_dict()[name], weights[name].half())

    params = {**SINGLE, "dtype": "float32"}
    pipe = load_model(store, UNET, "diffusers", GPU_PLAN, params=params, device="cpu")
    assert pipe.unet.dtype == torch.float32


def test_file_picks_one_checkpoint_of_several(store, base_folder, tmp_path):
    import torch

    seven = _unet_weights(base_folder, seed=7)
    eight = _unet_weights(base_folder, seed=8)
    _install(store, UNET, {"a.safetensors": seven, "b.safetensors": eight}, tmp_path)

    with pytest.raises(
        ValueError, match=r"2 checkpoints \(a.safetensors, b.safetensors\).*file:"
    ):
        load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE)

    pipe: Any = load_model(
        store,
        UNET,
        "diffusers",
        CPU_PLAN,
        params={**SINGLE, "file": "b.safetensors", "component": "unet"},
    )
    name = "conv_in.weight"
    assert torch.equal(pipe.unet.state_dict()[name], eight[name])
    assert not torch.equal(pipe.unet.state_dict()[name], seven[name])

    with pytest.raises(StoreError, match="has no file 'c.safetensors'.*a.safetensors"):
        load_model(
            store,
            UNET,
            "diffusers",
            CPU_PLAN,
            params={**SINGLE, "file": "c.safetensors"},
        )


def test_load_need_bytes_counts_the_checkpoint_and_the_rest_of_the_base(
    store, base_folder, tmp_path
):
    folder = _install(
        store, UNET, {"unet.safetensors": _unet_weights(base_folder, 7)}, tmp_path
    )
    checkpoint = (folder / "unet.safetensors").stat().st_size
    base = require(store, BASE).folder
    rest = need_bytes(base) - need_bytes(base / "unet")
    assert 0 < rest < need_bytes(base)
    assert load_need_bytes(store, UNET, SINGLE) == checkpoint + rest
    assert load_need_bytes(store, BASE) == need_bytes(base)


# -- GGUF ---------------------------------------------------------------------------


def test_gguf_weights_stay_quantized_dequantize_close_to_the_originals_and_render(
    store, base_folder, tmp_path
):
    import gguf
    import numpy as np
    import torch
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter

    Q = gguf.GGMLQuantizationType
    weights = _unet_weights(base_folder, seed=7)
    _install(store, GGUF, {"unet-Q8_0.gguf": weights}, tmp_path)

    pipe: Any = load_model(store, GGUF, "diffusers", CPU_PLAN, params=QUANTIZED)

    assert type(pipe).__name__ == "StableDiffusionPipeline"
    params = dict(pipe.unet.named_parameters())
    assert set(params) <= set(weights)
    seen = set()
    for name, original in weights.items():
        if name not in params:
            continue  # a buffer
        loaded = params[name]
        qtype = _quant_type(name, tuple(original.shape))
        restored = _dequantized(loaded)
        assert restored.shape == original.shape, name
        error = (restored - original).abs().max().item()
        scale = original.abs().max().item()
        if qtype in (Q.Q8_0, Q.Q4_0):
            # Stored as the file's blocks, not as floats.
            assert isinstance(loaded, GGUFParameter), name
            assert loaded.quant_type == qtype and loaded.dtype == torch.uint8, name
            # Off by at most one step: a block's largest value over 127 (Q8_0)
            # or over 8 (Q4_0), bounded here by the tensor's largest value.
            levels = 127 if qtype == Q.Q8_0 else 7
            assert 0 < error <= scale / levels, (name, error)
        elif qtype == Q.F16:
            assert error <= scale * 1e-3, (name, error)
        else:
            assert error == 0, (name, error)
        seen.add(qtype)
    assert seen == {Q.Q8_0, Q.Q4_0, Q.F16, Q.F32}
    quantized = [m for m in pipe.unet.modules() if isinstance(m, GGUFLinear)]
    assert len(quantized) == 4

    image = _render(pipe)
    assert image.shape == (32, 32, 3)
    assert np.isfinite(image).all()
    # The same UNet unquantized renders nearly the same image; the base's
    # own UNet does not.
    _install(store, UNET, {"unet.safetensors": weights}, tmp_path)
    exact = _render(load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE))
    base = _render(load_model(store, BASE, "diffusers", CPU_PLAN))
    assert np.abs(image - exact).max() < np.abs(image - base).max()


def test_a_gguf_model_needs_a_gguf_file(store, base_folder, tmp_path):
    _install(store, UNET, {"unet.safetensors": _unet_weights(base_folder, 7)}, tmp_path)
    with pytest.raises(
        StoreError, match=r"holds no checkpoint: a \.gguf file.*unet.safetensors"
    ):
        load_model(store, UNET, "diffusers", CPU_PLAN, params=QUANTIZED)

    _install(store, GGUF, {"unet.gguf": _unet_weights(base_folder, 7)}, tmp_path)
    with pytest.raises(StoreError, match=r"holds no checkpoint: a \.safetensors"):
        load_model(store, GGUF, "diffusers", CPU_PLAN, params=SINGLE)
    with pytest.raises(ValueError, match="need gguf: true"):
        load_model(
            store, GGUF, "diffusers", CPU_PLAN, params={**SINGLE, "file": "unet.gguf"}
        )


# -- errors -----------------------------------------------------------------------


def test_a_missing_base_names_its_pull_command(base_folder, tmp_path):
    store = tmp_path / "store"
    _install(store, UNET, {"unet.safetensors": _unet_weights(base_folder, 7)}, tmp_path)
    with pytest.raises(ModelMissing, match=f"python manage.py models pull {BASE}"):
        load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE)
    with pytest.raises(ModelMissing, match=f"python manage.py models pull {GGUF}"):
        load_model(store, GGUF, "diffusers", CPU_PLAN, params=QUANTIZED)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"single_file": True}, "single_file checkpoint of one component.*base: KEY"),
        ({"gguf": True, "base": ""}, "gguf checkpoint of one component.*base: KEY"),
        ({"single_file": True, "base": UNET}, "names itself as its base"),
        ({**SINGLE, "component": 3}, "component: 3.*non-empty string"),
        ({**SINGLE, "file": ""}, "file: ''.*non-empty string"),
        ({**SINGLE, "dtype": "int3"}, "dtype must be one of"),
    ],
)
def test_bad_single_file_params_are_value_errors_before_any_file_is_read(
    tmp_path, params, message
):
    # The store is empty: the params are checked first.
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "store", UNET, "diffusers", CPU_PLAN, params=params)


def test_a_model_without_a_checkpoint_is_a_store_error(store, tmp_path):
    _install(store, UNET, {"README.md": b"weights to follow"}, tmp_path)
    with pytest.raises(
        StoreError, match=r"'tiny-sd-unet' holds no checkpoint.*README.md"
    ):
        load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE)


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (
            "scheduler",
            "is a DDIMScheduler, which diffusers .* cannot load from a single file",
        ),
        ("text_encoder", "is a transformers CLIPTextModel, which cannot be loaded"),
        ("safety_checker", "has no component 'safety_checker'; its components are: "),
        ("transformer", "has no component 'transformer'.*unet"),
    ],
)
def test_a_component_that_cannot_be_loaded_from_a_file_is_named(
    store, base_folder, tmp_path, component, message
):
    _install(store, UNET, {"unet.safetensors": _unet_weights(base_folder, 7)}, tmp_path)
    with pytest.raises(ValueError, match=message):
        load_model(
            store,
            UNET,
            "diffusers",
            CPU_PLAN,
            params={**SINGLE, "component": component},
        )


def test_a_base_that_is_not_a_diffusers_pipeline_is_a_store_error(
    store, base_folder, tmp_path
):
    _install(store, UNET, {"unet.safetensors": _unet_weights(base_folder, 7)}, tmp_path)
    _install(
        store, "flat", {"model.safetensors": _unet_weights(base_folder, 8)}, tmp_path
    )
    with pytest.raises(
        StoreError, match="base model 'flat' is not a diffusers pipeline"
    ):
        load_model(
            store, UNET, "diffusers", CPU_PLAN, params={**SINGLE, "base": "flat"}
        )


@pytest.mark.parametrize(
    ("name", "params"),
    [("unet.safetensors", SINGLE), ("unet.gguf", QUANTIZED)],
)
def test_a_corrupt_checkpoint_is_a_store_error_naming_verify(
    store, base_folder, tmp_path, name, params
):
    weights = _unet_weights(base_folder, 7)
    folder = _install(store, UNET, {name: weights}, tmp_path)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(
        StoreError,
        match=f"{name} of '{UNET}' could not be loaded.*models verify {UNET}",
    ):
        load_model(store, UNET, "diffusers", CPU_PLAN, params=params)


def test_a_checkpoint_of_another_model_is_a_store_error(store, base_folder, tmp_path):
    import diffusers

    # The VAE's weights, and a UNet with twice the channels of the base's.
    vae = diffusers.AutoencoderKL.from_pretrained(base_folder, subfolder="vae")
    vae_weights = {n: t.contiguous() for n, t in vae.state_dict().items()}
    config = dict(
        diffusers.UNet2DConditionModel.load_config(base_folder, subfolder="unet")
    )
    config["block_out_channels"] = [8, 16]
    wider = diffusers.UNet2DConditionModel.from_config(config).state_dict()
    _install(store, UNET, {"vae.safetensors": vae_weights}, tmp_path)
    _install(store, GGUF, {"wider.gguf": wider}, tmp_path)

    with pytest.raises(
        StoreError,
        match=r"vae.safetensors of 'tiny-sd-unet' could not be loaded as the unet"
        r" \(UNet2DConditionModel\) of 'tiny-sd'.*checkpoint of that model",
    ):
        load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE)
    with pytest.raises(
        StoreError, match="wider.gguf.*expected shape.*checkpoint of that model"
    ):
        load_model(store, GGUF, "diffusers", CPU_PLAN, params=QUANTIZED)


# -- variants and FP8 storage -------------------------------------------------------


def test_a_pipeline_pulled_as_its_fp16_variant_loads(tmp_path):
    """SDXL and SVD are fetched as ``*.fp16.safetensors`` only; from_pretrained
    finds them only when told the variant, which the folder gives away."""
    import numpy as np

    from workers.modelstore.loaders import weights_variant

    folder = tmp_path / "built"
    tiny_sd_pipeline().save_pretrained(folder, variant="fp16")
    assert weights_variant(folder) == "fp16"
    store = tmp_path / "store"
    import_dir(store, "sdxl-base", folder)

    pipe: Any = load_model(store, "sdxl-base", "diffusers", CPU_PLAN)

    assert np.isfinite(_render(pipe)).all()
    plain = tmp_path / "plain"
    tiny_sd_pipeline().save_pretrained(plain)
    assert weights_variant(plain) is None


def test_an_fp8_checkpoint_stays_in_fp8_until_each_layer_runs(
    store, base_folder, tmp_path
):
    import numpy as np
    import torch

    weights = _unet_weights(base_folder, seed=7)
    stored = {
        name: tensor.to(torch.float8_e4m3fn) if tensor.ndim > 1 else tensor
        for name, tensor in weights.items()
    }
    _install(store, UNET, {"unet-fp8.safetensors": stored}, tmp_path)

    upcast: Any = load_model(store, UNET, "diffusers", CPU_PLAN, params=SINGLE)
    kept: Any = load_model(
        store, UNET, "diffusers", CPU_PLAN,
        params={**SINGLE, "storage_dtype": "float8_e4m3fn"},
    )  # fmt: skip

    def weight_bytes(unet: Any) -> int:
        return sum(p.numel() * p.element_size() for p in unet.parameters())

    assert {p.dtype for p in upcast.unet.parameters()} == {torch.float32}
    assert torch.float8_e4m3fn in {p.dtype for p in kept.unet.parameters()}
    assert weight_bytes(kept.unet) < weight_bytes(upcast.unet) / 2
    image = _render(kept)
    assert np.isfinite(image).all()
    assert np.allclose(image, _render(upcast), atol=0.05)

    with pytest.raises(ValueError, match="storage_dtype"):
        load_model(
            store, UNET, "diffusers", CPU_PLAN,
            params={**SINGLE, "storage_dtype": "int4"},
        )  # fmt: skip
    with pytest.raises(ValueError, match="already stored quantized"):
        load_model(
            store, UNET, "diffusers", CPU_PLAN,
            params={**QUANTIZED, "storage_dtype": "float8_e4m3fn"},
        )  # fmt: skip


@pytest.mark.parametrize(
    ("files", "variant"),
    [
        (["unet/diffusion_pytorch_model.fp16.safetensors", "vae/x.json"], "fp16"),
        # A component without the variant loads its plain weights.
        (
            [
                "unet/diffusion_pytorch_model.fp16.safetensors",
                "vae/diffusion_pytorch_model.safetensors",
            ],
            "fp16",
        ),
        (
            [
                "text_encoder/model.fp16-00001-of-00002.safetensors",
                "text_encoder/model.fp16-00002-of-00002.safetensors",
            ],
            "fp16",
        ),
        (["unet/diffusion_pytorch_model-00001-of-00002.safetensors"], None),
        (["transformer/ltxv-13b-0.9.8-distilled.safetensors"], None),
        (
            [
                "unet/diffusion_pytorch_model.fp16.safetensors",
                "vae/diffusion_pytorch_model.bf16.safetensors",
            ],
            None,
        ),
    ],
    ids=["fp16", "mixed", "sharded", "plain-shards", "dotted-name", "two-variants"],
)
def test_the_variant_is_read_from_the_weight_file_names(tmp_path, files, variant):
    from workers.modelstore.loaders import weights_variant

    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0")
    assert weights_variant(tmp_path) == variant
