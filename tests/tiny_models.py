"""Tiny random-weight models for the tests, built as diffusers' and
transformers' own tests build theirs: kilobytes to a few megabytes, made in
memory and saved where a test needs them. Nothing is downloaded."""

from __future__ import annotations

from typing import Any

import pytest

# The vocabulary of every tiny text encoder here (and the prompts the tests
# write in it).
WORDS = ["<pad>", "<s>", "</s>", "<unk>"]
WORDS += ["a", "red", "fox", "in", "the", "snow", "neon", "city"]


def word_tokenizer(words: list[str], max_length: int | None = None) -> Any:
    """A fast tokenizer over ``words``, a WordLevel vocabulary in that order;
    those of <pad>, <s>, </s> and <unk> among them are its special tokens."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")

    backend = tokenizers.Tokenizer(
        tokenizers.models.WordLevel(
            vocab={word: i for i, word in enumerate(words)}, unk_token="<unk>"
        )
    )
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    specials = {
        "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>",
    }  # fmt: skip
    named = {name: token for name, token in specials.items() if token in words}
    if max_length is not None:
        named["model_max_length"] = max_length
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **named)


def _word_tokenizer(max_length: int) -> Any:
    """word_tokenizer over WORDS: pad 0, bos 1, eos 2."""
    return word_tokenizer(WORDS, max_length)


def tiny_sd_pipeline() -> Any:
    """A StableDiffusionPipeline with random weights, a few kilobytes in all."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=2,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
        sample_size=16,
    )
    tokenizer = _word_tokenizer(8)
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(WORDS),
            hidden_size=8,
            intermediate_size=16,
            num_attention_heads=2,
            num_hidden_layers=1,
            max_position_embeddings=8,
            projection_dim=8,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
    )
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_svd_pipeline() -> Any:
    """A StableVideoDiffusionPipeline (image to video) with random weights,
    about 8 MB: the image encoder takes 224 px inputs, as SVD resizes to."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    unet = diffusers.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=8,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=8,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    vae = diffusers.AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
    )
    image_encoder = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            image_size=224,
            intermediate_size=37,
            patch_size=32,
        )
    )
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    return diffusers.StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=transformers.CLIPImageProcessor(crop_size=32, size=32),
    )


def tiny_ltx_condition_pipeline() -> Any:
    """An LTXConditionPipeline (LTX-Video with first- and last-frame
    conditions) with random weights: a one-layer transformer, an 8-channel
    video VAE and a one-layer T5 over a few words."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    transformer = diffusers.LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = diffusers.AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    tokenizer = _word_tokenizer(16)
    text_encoder = transformers.T5EncoderModel(
        transformers.T5Config(
            vocab_size=len(WORDS),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=1,
            num_heads=4,
            pad_token_id=0,
            eos_token_id=2,
        )
    )
    return diffusers.LTXConditionPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )


def tiny_flux_pipeline() -> Any:
    """A FluxPipeline with random weights: a one-block transformer, a
    one-layer CLIP and T5, a one-level VAE."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    transformer = diffusers.FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    clip = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(WORDS),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=1,
            max_position_embeddings=16,
            projection_dim=32,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
    )
    t5 = transformers.T5EncoderModel(
        transformers.T5Config(
            vocab_size=len(WORDS),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    )
    vae = diffusers.AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=1,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    return diffusers.FluxPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        text_encoder=clip,
        text_encoder_2=t5,
        tokenizer=_word_tokenizer(16),
        tokenizer_2=_word_tokenizer(16),
        transformer=transformer,
        vae=vae,
    )
