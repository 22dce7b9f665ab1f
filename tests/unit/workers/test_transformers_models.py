"""The transformers loaders of the model store, run for real on tiny
random-weight models built here (a few kilobytes to a few megabytes each,
made as transformers' own tests make theirs) and saved to a temporary folder.
Nothing is downloaded. The native providers (llama.cpp, Coqui) are checked for
the messages a worker without their packages or files gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tiny_models import word_tokenizer
from workers.modelstore.memory import MemoryPlan, Policy
from workers.modelstore.native_models import (
    gguf_block_count,
    gpu_layers,
    load_coqui,
    load_llama_cpp,
)
from workers.modelstore.store import StoreError
from workers.modelstore.transformers_models import (
    EmotionClassifier,
    MusicGenerator,
    SpeechSynthesizer,
    Transcriber,
    load_transformers,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

CPU = MemoryPlan(Policy.CPU, False, False, "tests")
SEQUENTIAL = MemoryPlan(Policy.SEQUENTIAL_OFFLOAD, True, True, "tests")

WHISPER_WORDS = ["Ġla", "Ġdi", "Ġda", "Ġoh", "Ġyeah", "Ġbaby", "Ġnight", "Ġlight"]
EMOTIONS = ["angry", "calm", "happy", "sad"]


# -- tiny models ------------------------------------------------------------------


def _word_tokenizer(words: list[str]) -> Any:
    """A tokenizer over ``words``, after the specials <pad>, </s>, <unk>."""
    return word_tokenizer(["<pad>", "</s>", "<unk>", *words])


def _save(folder: Path, *parts: Any) -> Path:
    for part in parts:
        part.save_pretrained(folder)
    return folder


def _tiny_whisper(folder: Path, *, timestamps: bool) -> Path:
    """A Whisper of 16 wide layers over a few words; with ``timestamps`` it
    also has Whisper's 1501 time tokens, which its long-form decoding needs."""
    special = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>"]
    special += ["<|notimestamps|>"]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)] if timestamps else []
    vocab = {token: i for i, token in enumerate(special + stamps + WHISPER_WORDS)}
    tokenizer = transformers.WhisperTokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": special[1:]})
    extractor = transformers.WhisperFeatureExtractor(feature_size=8)
    processor = transformers.WhisperProcessor(
        feature_extractor=extractor, tokenizer=tokenizer
    )
    config = transformers.WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=8,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=16,
        decoder_ffn_dim=16,
        max_target_positions=24,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(config)
    # Saved on its own, as a real Whisper's is: a generation config derived
    # from the model config is rebuilt at generate time, losing these.
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=1,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        max_length=24,
        # A random model favours the start token; keeping the specials out of
        # the text makes what it writes visible to the test.
        suppress_tokens=[1, 2, 3, 4],
        begin_suppress_tokens=[0],
        **({"no_timestamps_token_id": 4} if timestamps else {}),
    )
    return _save(folder, model, processor)


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "whisper"
    return _tiny_whisper(folder, timestamps=False)


def _tiny_musicgen(melody: bool) -> tuple[Any, Any]:
    tokenizer = _word_tokenizer(["lofi", "beat", "with", "piano", "drums", "calm"])
    text = transformers.T5Config(
        vocab_size=len(tokenizer),
        d_model=8,
        d_kv=4,
        d_ff=16,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    # 32 kHz and a hop of 640 samples: MusicGen's 50 codec frames a second.
    codec = transformers.EncodecConfig(
        sampling_rate=32000,
        upsampling_ratios=[8, 5, 4, 4],
        hidden_size=8,
        num_filters=2,
        num_lstm_layers=1,
        compress=1,
        codebook_size=32,
        codebook_dim=8,
        target_bandwidths=[1.0],
    )
    decoder = transformers.MusicgenDecoderConfig(
        vocab_size=32,
        pad_token_id=32,
        bos_token_id=32,
        hidden_size=8,
        ffn_dim=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_codebooks=4,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    if melody:
        config = transformers.MusicgenMelodyConfig(
            text_encoder=text, audio_encoder=codec, decoder=decoder, num_chroma=12
        )
        model = transformers.MusicgenMelodyForConditionalGeneration(config)
        # Its feature extractor (chroma) needs torchaudio: the callers add it.
        processor = tokenizer
    else:
        model = transformers.MusicgenForConditionalGeneration(
            transformers.MusicgenConfig(
                text_encoder=text, audio_encoder=codec, decoder=decoder
            )
        )
        extractor = transformers.EncodecFeatureExtractor(sampling_rate=32000)
        processor = transformers.MusicgenProcessor(
            feature_extractor=extractor, tokenizer=tokenizer
        )
    # The codec's codebooks start as zeros (they are learned averages, not
    # initialised weights), which would make every code sound the same.
    for layer in model.audio_encoder.quantizer.layers:
        layer.codebook.embed.normal_()
    return model, processor


@pytest.fixture(scope="module")
def musicgen_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(tmp_path_factory.mktemp("models") / "musicgen", *_tiny_musicgen(False))


@pytest.fixture(scope="module")
def emotion_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_emotion_classifier(tmp_path_factory.mktemp("models") / "emotion")


def tiny_emotion_classifier(folder: Path) -> Path:
    """A wav2vec2 speech emotion classifier over EMOTIONS, saved in ``folder``."""
    config = transformers.Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=8,
        id2label=dict(enumerate(EMOTIONS)),
        label2id={label: i for i, label in enumerate(EMOTIONS)},
    )
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ForSequenceClassification(config)
    extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=True
    )
    return _save(folder, model, extractor)


@pytest.fixture(scope="module")
def bark_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Bark's generation constants (token offsets, codebook counts, the codec's
    # 75 frames a second at 24 kHz) are kept; only the widths and depths are
    # tiny, so the vocabularies are real-sized but each row is 8 numbers.
    small = {"hidden_size": 8, "num_layers": 1, "num_heads": 2, "block_size": 1024}
    semantic = transformers.BarkSemanticConfig(
        input_vocab_size=129600, output_vocab_size=10048, **small
    )
    coarse = transformers.BarkCoarseConfig(
        input_vocab_size=12096, output_vocab_size=12096, **small
    )
    fine = transformers.BarkFineConfig(
        input_vocab_size=1056,
        output_vocab_size=1056,
        n_codes_total=8,
        n_codes_given=1,
        **small,
    )
    codec = transformers.EncodecConfig(
        sampling_rate=24000,
        hidden_size=8,
        num_filters=2,
        num_lstm_layers=1,
        compress=1,
        codebook_size=1024,
        codebook_dim=8,
        target_bandwidths=[6.0],
    )
    config = transformers.BarkConfig(
        semantic_config=semantic.to_dict(),
        coarse_acoustics_config=coarse.to_dict(),
        fine_acoustics_config=fine.to_dict(),
        codec_config=codec.to_dict(),
    )
    torch.manual_seed(0)
    model = transformers.BarkModel(config)
    for layer in model.codec_model.quantizer.layers:
        layer.codebook.embed.normal_()
    processor = transformers.BarkProcessor(
        tokenizer=_word_tokenizer(["hello", "sing", "the", "night", "away"])
    )
    folder = _save(tmp_path_factory.mktemp("models") / "bark", model, processor)
    # A saved Bark carries its three generation configs nested in one file,
    # which BarkModel(config) does not make (and BarkGenerationConfig cannot
    # save in this transformers); written here as the real one is laid out,
    # with Bark's own constants (token offsets, rates, codebook counts).
    generation = pytest.importorskip(
        "transformers.models.bark.generation_configuration_bark"
    )
    nested = {
        "semantic_config": generation.BarkSemanticGenerationConfig().to_dict(),
        "coarse_acoustics_config": generation.BarkCoarseGenerationConfig().to_dict(),
        "fine_acoustics_config": generation.BarkFineGenerationConfig().to_dict(),
        "sample_rate": 24000,
        "codebook_size": 1024,
    }
    (folder / "generation_config.json").write_text(json.dumps(nested))
    # One speaker preset, laid out as Bark's speaker_embeddings/ folder is:
    # semantic tokens, then 2 coarse and 8 fine codebooks of the same frames.
    rng = np.random.default_rng(0)
    presets = folder / "speaker_embeddings" / "v2"
    presets.mkdir(parents=True)
    paths = {}
    for name, array in {
        "semantic_prompt": rng.integers(0, 10000, 20),
        "coarse_prompt": rng.integers(0, 1024, (2, 30)),
        "fine_prompt": rng.integers(0, 1024, (8, 30)),
    }.items():
        np.save(presets / f"en_speaker_0_{name}.npy", array)
        paths[name] = f"speaker_embeddings/v2/en_speaker_0_{name}.npy"
    index = {"repo_or_path": "unused", "v2/en_speaker_0": paths}
    (folder / "speaker_embeddings_path.json").write_text(json.dumps(index))
    return folder


def _noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * rate))).astype(np.float32)


# -- transcription -----------------------------------------------------------------


def test_whisper_transcribes_to_words_of_its_vocabulary(whisper_folder: Path) -> None:
    transcriber = load_transformers(whisper_folder, "transcription", CPU)
    assert isinstance(transcriber, Transcriber)
    assert transcriber.sample_rate == 16000
    assert transcriber.model.device.type == "cpu"
    assert transcriber.model.dtype == torch.float32

    text = transcriber.transcribe(_noise(2.0, 16000), 16000)

    assert text
    allowed = {word.removeprefix("Ġ") for word in WHISPER_WORDS}
    assert set(text.split()) <= allowed
    # Greedy decoding: the same audio gives the same text.
    assert transcriber.transcribe(_noise(2.0, 16000), 16000) == text


def test_whisper_takes_stereo_at_another_rate(whisper_folder: Path) -> None:
    transcriber = load_transformers(whisper_folder, "transcription", CPU)
    mono = _noise(1.0, 16000, seed=3)
    at_16k = transcriber.transcribe(mono, 16000)
    # The same signal at 32 kHz in two identical channels comes back to
    # (nearly) the same features; the emotion tests check the resampling
    # closely, this random model's text is too coarse to.
    upsampled = np.repeat(mono, 2)
    stereo = np.stack([upsampled, upsampled], axis=1)
    assert transcriber.transcribe(stereo, 32000) == at_16k
    assert transcriber.transcribe(np.zeros(0, np.float32), 16000) == ""


def test_whisper_reads_audio_longer_than_its_window_whole(tmp_path: Path) -> None:
    folder = _tiny_whisper(tmp_path / "whisper", timestamps=True)
    transcriber = load_transformers(folder, "transcription", CPU)
    assert isinstance(transcriber, Transcriber)
    seen: list[int] = []
    generate = transcriber.model.generate

    def recording(features: Any, **kwargs: Any) -> Any:
        seen.append(features.shape[-1])
        return generate(features, **kwargs)

    transcriber.model.generate = recording
    song = _noise(70.0, 16000, seed=5)

    text = transcriber.transcribe(song, 16000)

    # 70 s of 10 ms feature frames: all of it, not Whisper's first 30 s.
    assert seen == [7000]
    assert isinstance(text, str)
    allowed = {word.removeprefix("Ġ") for word in WHISPER_WORDS}
    assert set(text.split()) <= allowed
    assert transcriber.transcribe(song, 16000) == text


# -- music -----------------------------------------------------------------------------


def test_musicgen_makes_seeded_audio_of_the_asked_length(
    musicgen_folder: Path,
) -> None:
    generator = load_transformers(
        musicgen_folder, "music", CPU, params={"max_seconds": 4}
    )
    assert isinstance(generator, MusicGenerator)

    audio, rate = generator.generate("lofi beat with piano", 1.5, seed=7)

    assert rate == 32000
    assert audio.dtype == np.float32
    assert audio.shape == (48000,)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    again, _ = generator.generate("lofi beat with piano", 1.5, seed=7)
    np.testing.assert_array_equal(again, audio)
    other, _ = generator.generate("lofi beat with piano", 1.5, seed=8)
    assert not np.array_equal(other, audio)


def test_musicgen_refuses_lengths_beyond_the_registry_limit(
    musicgen_folder: Path,
) -> None:
    generator = load_transformers(
        musicgen_folder, "music", CPU, params={"max_seconds": 2}
    )
    assert isinstance(generator, MusicGenerator)
    with pytest.raises(ValueError, match=r"\(0, 2\]"):
        generator.generate("calm drums", 2.5, seed=1)
    with pytest.raises(ValueError, match="melody"):
        generator.generate("calm drums", 1.0, seed=1, melody=(_noise(1, 8000), 8000))


def test_musicgen_refuses_a_registry_entry_that_describes_another_model(
    musicgen_folder: Path,
) -> None:
    with pytest.raises(StoreError, match="says 2 channel.*makes 1"):
        load_transformers(musicgen_folder, "music", CPU, params={"channels": 2})
    with pytest.raises(StoreError, match="takes no melody"):
        load_transformers(musicgen_folder, "music", CPU, params={"melody": True})


def test_musicgen_melody_follows_a_tune(tmp_path: Path) -> None:
    pytest.importorskip(
        "torchaudio", reason="MusicGen melody's chroma features need torchaudio"
    )
    model, tokenizer = _tiny_musicgen(True)
    extractor = transformers.MusicgenMelodyFeatureExtractor(
        sampling_rate=32000, n_fft=512, hop_length=256
    )
    processor = transformers.MusicgenMelodyProcessor(
        feature_extractor=extractor, tokenizer=tokenizer
    )
    folder = _save(tmp_path / "melody", model, processor)
    generator = load_transformers(folder, "music", CPU)
    assert isinstance(generator, MusicGenerator) and generator.melody

    t = np.arange(22050) / 22050
    tune = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    audio, rate = generator.generate("calm piano", 1.0, seed=3, melody=(tune, 22050))

    assert rate == 32000
    assert audio.shape == (32000,)
    assert np.isfinite(audio).all()
    unconditioned, _ = generator.generate("calm piano", 1.0, seed=3)
    assert not np.array_equal(unconditioned, audio)


def test_musicgen_melody_without_torchaudio_says_so(tmp_path: Path) -> None:
    if not _missing("torchaudio"):
        pytest.skip("torchaudio is installed")
    folder = _save(tmp_path / "melody", *_tiny_musicgen(True))
    with pytest.raises(
        StoreError, match="needs a library this worker lacks.*torchaudio"
    ):
        load_transformers(folder, "music", CPU)


# -- speech ---------------------------------------------------------------------------


def test_bark_speaks_seeded_audio_no_longer_than_asked(bark_folder: Path) -> None:
    synthesizer = load_transformers(bark_folder, "speech", CPU)
    assert isinstance(synthesizer, SpeechSynthesizer)
    assert synthesizer.sample_rate == 24000
    assert synthesizer.voices == ["v2/en_speaker_0"]

    audio, rate = synthesizer.speak("hello sing the night away", 5, max_seconds=0.3)

    assert rate == 24000
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Bark stops when its semantic model says so; a random one rarely does.
    assert 0 < audio.shape[0] <= round(0.3 * 24000)
    assert np.isfinite(audio).all()
    again, _ = synthesizer.speak("hello sing the night away", 5, max_seconds=0.3)
    np.testing.assert_array_equal(again, audio)
    other, _ = synthesizer.speak("hello sing the night away", 6, max_seconds=0.3)
    assert not np.array_equal(other, audio)


def test_bark_speaks_with_a_voice_preset_of_its_folder(bark_folder: Path) -> None:
    synthesizer = load_transformers(bark_folder, "speech", CPU)
    assert isinstance(synthesizer, SpeechSynthesizer)
    plain, _ = synthesizer.speak("sing the night away", 2, max_seconds=0.2)

    voiced, rate = synthesizer.speak(
        "sing the night away", 2, voice="v2/en_speaker_0", max_seconds=0.2
    )

    assert rate == 24000
    assert 0 < voiced.shape[0] <= round(0.2 * 24000)
    assert not np.array_equal(voiced[: plain.shape[0]], plain[: voiced.shape[0]])
    with pytest.raises(ValueError, match="unknown voice.*v2/en_speaker_0"):
        synthesizer.speak("hello", 5, voice="v2/en_speaker_6")


# -- emotion --------------------------------------------------------------------------


def test_emotion_gives_a_probability_per_label(emotion_folder: Path) -> None:
    classifier = load_transformers(emotion_folder, "emotion", CPU)
    assert isinstance(classifier, EmotionClassifier)

    scores = classifier.classify(_noise(1.0, 44100), 44100)

    assert list(scores) == EMOTIONS
    assert all(0.0 <= p <= 1.0 for p in scores.values())
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert classifier.classify(_noise(1.0, 44100), 44100) == scores
    assert classifier.classify(_noise(1.0, 44100, seed=9), 44100) != scores


def test_emotion_resamples_audio_to_the_model_rate(emotion_folder: Path) -> None:
    classifier = load_transformers(emotion_folder, "emotion", CPU)
    assert isinstance(classifier, EmotionClassifier)
    assert classifier.sample_rate == 16000

    def tone(rate: int) -> np.ndarray:
        # Band-limited, so 48 kHz resampled to 16 kHz is the 16 kHz tone.
        t = np.arange(rate) / rate
        wobble = np.sin(2 * np.pi * 1300 * t) * np.sin(2 * np.pi * 3 * t)
        return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * wobble).astype(np.float32)

    native = classifier.classify(tone(16000), 16000)
    resampled = classifier.classify(tone(48000), 48000)
    assert resampled == pytest.approx(native, abs=1e-6)
    # The control: the same 48 kHz samples taken for 16 kHz ones (a tone three
    # times slower) move this tiny model's scores far more than that.
    misread = classifier.classify(tone(48000), 16000)
    assert max(abs(misread[k] - native[k]) for k in native) > 2e-5


def test_an_offload_plan_on_the_cpu_device_runs_as_the_cpu_plan(
    emotion_folder: Path,
) -> None:
    plain = load_transformers(emotion_folder, "emotion", CPU)
    offloaded = load_transformers(emotion_folder, "emotion", SEQUENTIAL, device="cpu")
    assert isinstance(offloaded, EmotionClassifier)
    assert offloaded.model.dtype == torch.float32
    assert offloaded.model.device.type == "cpu"
    samples = _noise(0.5, 16000, seed=4)
    assert offloaded.classify(samples, 16000) == pytest.approx(
        plain.classify(samples, 16000), abs=1e-6
    )


# -- what is refused -------------------------------------------------------------------


def test_an_unknown_task_or_dtype_is_a_value_error(emotion_folder: Path) -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        load_transformers(emotion_folder, "dance", CPU)
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_transformers(emotion_folder, "emotion", CPU, dtype="int8")


def test_a_folder_without_config_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is not a folder"):
        load_transformers(tmp_path / "absent", "music", CPU)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(StoreError, match="no config.json"):
        load_transformers(tmp_path, "music", CPU)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="cannot read"):
        load_transformers(tmp_path, "music", CPU)


def test_a_model_of_another_kind_is_a_store_error(
    emotion_folder: Path, whisper_folder: Path
) -> None:
    with pytest.raises(StoreError, match="wav2vec2 model, which cannot do music"):
        load_transformers(emotion_folder, "music", CPU)
    with pytest.raises(StoreError, match="cannot do speech"):
        load_transformers(whisper_folder, "speech", CPU)


def test_an_offload_plan_without_cuda_is_a_store_error(
    emotion_folder: Path, bark_folder: Path
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA device")
    with pytest.raises(StoreError, match="no CUDA device"):
        load_transformers(emotion_folder, "emotion", SEQUENTIAL, device="cuda")
    with pytest.raises(StoreError, match="no CUDA device"):
        load_transformers(bark_folder, "speech", SEQUENTIAL, device="cuda:1")


def test_missing_weights_are_a_store_error(
    emotion_folder: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "emotion"
    shutil.copytree(emotion_folder, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(StoreError, match="could not be loaded.*models verify emotion"):
        load_transformers(broken, "emotion", CPU)


# -- llama.cpp and Coqui -------------------------------------------------------------


def _missing(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return True
    return False


def test_llama_cpp_names_the_gguf_it_needs(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no .gguf file"):
        load_llama_cpp(tmp_path, CPU, params={"context": 512})
    (tmp_path / "a-Q4_K_M.gguf").write_bytes(b"GGUF")
    (tmp_path / "b-Q8_0.gguf").write_bytes(b"GGUF")
    with pytest.raises(StoreError, match=r"2 \.gguf files.*a-Q4_K_M\.gguf"):
        load_llama_cpp(tmp_path, CPU, params={"context": 512})


@pytest.mark.skipif(not _missing("llama_cpp"), reason="llama-cpp-python is installed")
def test_llama_cpp_without_its_package_names_the_pip_package(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(StoreError, match="pip install llama-cpp-python"):
        load_llama_cpp(tmp_path, CPU, params={"context": 512})


def test_llama_cpp_refuses_a_bad_context(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="context"):
        load_llama_cpp(tmp_path, CPU, params={"context": 0})


def test_the_layer_count_is_read_from_the_gguf_header(tmp_path: Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(28)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert gguf_block_count(path) == 28
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all")
    with pytest.raises(StoreError, match="not a readable GGUF"):
        gguf_block_count(garbage)


def test_llama_cpp_layers_follow_the_memory_plan() -> None:
    gpu = MemoryPlan(Policy.GPU, False, False, "tests")
    offload = MemoryPlan(Policy.MODEL_OFFLOAD, True, True, "tests")
    gib = 1024**3
    assert gpu_layers(gpu, 32, 5 * gib, 2 * gib) == -1
    assert gpu_layers(CPU, 32, 5 * gib, 80 * gib) == 0
    # 80 % of 2.5 GiB free is 2 GiB: 2/5 of a 5 GiB model's 32 layers.
    assert gpu_layers(offload, 32, 5 * gib, int(2.5 * gib)) == 12
    assert gpu_layers(SEQUENTIAL, 32, 5 * gib, 100 * gib) == 32
    assert gpu_layers(offload, 32, 5 * gib, None) == 0
    assert gpu_layers(offload, None, 5 * gib, 2 * gib) == 0


def test_coqui_names_the_missing_xtts_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="config.json, model.pth"):
        load_coqui(tmp_path, CPU)
    (tmp_path / "config.json").write_text(json.dumps({"model": "xtts"}))
    with pytest.raises(StoreError, match="model.pth") as caught:
        load_coqui(tmp_path, CPU)
    assert "config.json" not in str(caught.value).split("lacks")[-1]


@pytest.mark.skipif(not _missing("TTS"), reason="Coqui TTS is installed")
def test_coqui_without_its_package_names_the_pip_package(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model": "xtts"}))
    (tmp_path / "model.pth").write_bytes(b"\0")
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(StoreError, match="pip install coqui-tts"):
        load_coqui(tmp_path, CPU)
