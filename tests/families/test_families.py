"""Encoder-decoder (T5) and multimodal (PaliGemma) families and their image datasets; every model is a
random-init tiny one built on the fly (one sweep over all three families: tests/e2e/test_family_sweeps.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from quantbench.backends.base import LoadRequest
from quantbench.config import registry
from quantbench.data.base import Sample
from quantbench.data.images import SHAPE_COLOURS, ImageFolder, SyntheticImages, open_image
from quantbench.errors import DatasetError
from quantbench.families.base import ModelFamily
from quantbench.families.multimodal import blank_image
from quantbench.measure.timing import DeviceClock, FirstTokenClock
from quantbench.models.source import resolve_model
from quantbench.runtime.device import resolve_device

MAX_NEW_TOKENS = 6
TINY_IMAGE_TOKENS = 16  # tiny-paligemma: (64 px / 16 px patches)^2


def image_folder_config(path: Path | None, **extra) -> OmegaConf:
    return OmegaConf.create(
        {
            "name": "images",
            "loader": "images",
            "path": None if path is None else str(path),
            "image_dir": None,
            "limit": None,
            "chat_template": False,
            **extra,
        }
    )


def synthetic_config(**extra) -> OmegaConf:
    return OmegaConf.create(
        {
            "name": "synthetic-images",
            "loader": "synthetic-images",
            "num_samples": 4,
            "image_size": 96,
            "prompt": "answer en what color is the shape?",
            "seed": 0,
            "limit": None,
            "chat_template": False,
            **extra,
        }
    )


def write_prompts(folder: Path, lines: list[str]) -> Path:
    path = folder / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def load_tiny(compose_config, cache_dir: Path, model: str, precision: str = "fp32"):
    """(family, loaded model) through the real model source and backend, as a job loads them."""
    cfg = compose_config([f"model={model}", f"precision={precision}"])
    family = registry.families().get(cfg.model.family)
    backend = registry.backends().get(cfg.precision.backend)
    spec = resolve_model(cfg.model, family, cache_dir)
    device = resolve_device("cpu")
    loaded = backend.load(
        LoadRequest(model=spec, family=family, precision=cfg.precision, device=device, cache_dir=cache_dir)
    )
    return family, loaded


def text_samples() -> list[Sample]:
    return [
        Sample("a", "Why is the sky blue?"),
        Sample("b", "Name three prime numbers and explain why they are prime."),
    ]


# ---------------------------------------------------------------- registration


@pytest.mark.parametrize("name", ["encoder-decoder", "multimodal"])
def test_families_are_registered_through_entry_points(name):
    family = registry.families().get(name)
    assert isinstance(family, ModelFamily)
    assert family.name == name and family.model_types


def test_image_datasets_are_registered_and_their_configs_compose(compose_config):
    cfg = compose_config(["model=tiny-paligemma", "dataset=synthetic-images", "dataset.num_samples=3"])
    samples = registry.datasets().get(cfg.dataset.loader).load(cfg.dataset)
    assert len(samples) == 3 and cfg.model.family == "multimodal"
    cfg = compose_config(["model=tiny-t5", "dataset=images"])
    assert cfg.dataset.loader == "images" and cfg.model.family == "encoder-decoder"
    for model in ("flan-t5-base", "paligemma-3b"):
        assert compose_config([f"model={model}"]).model.source == "hub"


# ---------------------------------------------------------------- image datasets


def test_synthetic_images_are_deterministic_and_answer_their_colour():
    first = SyntheticImages().load(synthetic_config())
    second = SyntheticImages().load(synthetic_config())
    assert [s.answer for s in first] == [s.answer for s in second]
    assert all(a.image.tobytes() == b.image.tobytes() for a, b in zip(first, second))
    other_seed = SyntheticImages().load(synthetic_config(seed=1))
    assert any(a.image.tobytes() != b.image.tobytes() for a, b in zip(first, other_seed))
    for sample in first:
        assert sample.image.size == (96, 96)
        assert sample.answer in SHAPE_COLOURS
        colours = {colour for _, colour in sample.image.getcolors(maxcolors=4)}
        assert SHAPE_COLOURS[sample.answer] in colours  # the shape is drawn in the answer's colour
    assert len(SyntheticImages().load(synthetic_config(limit=2))) == 2


def test_image_folder_reads_prompts_images_and_answers(tmp_path):
    Image.new("RGB", (20, 10), "red").save(tmp_path / "red.png")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "sub" / "blue.jpg")
    path = write_prompts(
        tmp_path,
        [
            json.dumps({"image": "red.png", "prompt": "answer en color?", "answer": "red", "id": "q1"}),
            "",
            json.dumps({"image": "sub/blue.jpg", "prompt": "caption en"}),
        ],
    )
    samples = ImageFolder().load(image_folder_config(path))
    assert [s.id for s in samples] == ["q1", "prompts-3"]
    assert [s.answer for s in samples] == ["red", None]
    assert samples[1].image == str(tmp_path / "sub" / "blue.jpg")
    assert open_image(samples[0].image).size == (20, 10)
    assert len(ImageFolder().load(image_folder_config(path, limit=1))) == 1
    # image_dir moves where relative paths start
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = write_prompts(elsewhere, [json.dumps({"image": "red.png", "prompt": "p"})])
    assert ImageFolder().load(image_folder_config(moved, image_dir=str(tmp_path)))[0].image == str(tmp_path / "red.png")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"image": "bad.png", "prompt": "p"}', "bad.png (named on line 1 of"),
        ('{"image": "absent.png", "prompt": "p"}', "image file not found:"),
        ('{"image": "good.png"}', "line 1: missing or empty prompt"),
        ("{not json", "line 1: not valid JSON"),
        ('["good.png", "p"]', "line 1: expected a JSON object"),
    ],
)
def test_bad_image_dataset_lines_name_the_file(tmp_path, line, message):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"this is not a PNG file")
    path = write_prompts(tmp_path, [line])
    with pytest.raises(DatasetError) as error:
        ImageFolder().load(image_folder_config(path))
    text = str(error.value)
    assert message in text and "\n" not in text
    assert str(path) in text or str(tmp_path / "absent.png") in text


def test_image_folder_without_a_prompts_file_says_what_to_set(tmp_path):
    with pytest.raises(DatasetError, match="set dataset.path=FILE.jsonl"):
        ImageFolder().load(image_folder_config(None))
    with pytest.raises(DatasetError, match="prompts file not found"):
        ImageFolder().load(image_folder_config(tmp_path / "none.jsonl"))


def test_a_truncated_image_fails_when_decoded_naming_the_file(tmp_path):
    whole = tmp_path / "whole.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(whole)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(DatasetError, match=f"image file {truncated} is not a readable image"):
        open_image(truncated)


# ---------------------------------------------------------------- encoder-decoder


def test_t5_generates_exact_counts_on_the_decoder_side(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-t5")
    tokenizer = loaded.processor
    batch = family.prepare_batch(text_samples(), tokenizer, device="cpu", max_input_tokens=64, chat_template=True)
    expected_input = sum(len(tokenizer(s.text)["input_ids"]) for s in text_samples())
    assert batch.n_input_tokens == expected_input
    generated = family.generate(loaded.model, batch, max_new_tokens=MAX_NEW_TOKENS, clock=None)
    # decoder tokens only: neither the prompt nor the decoder start token
    assert tuple(generated.new_tokens.shape) == (2, MAX_NEW_TOKENS)
    assert generated.n_generated_tokens == 2 * MAX_NEW_TOKENS
    direct = loaded.model.generate(
        **batch.inputs, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS, do_sample=False
    )
    assert torch.equal(direct[:, 0], torch.full((2,), loaded.model.config.decoder_start_token_id))
    assert torch.equal(direct[:, 1:], generated.new_tokens)
    texts = family.decode(tokenizer, generated)
    assert len(texts) == 2 and texts[0] != texts[1]  # random weights, but outputs follow the prompt


def first_token_after(module: torch.nn.Module, family, model, batch) -> tuple[float, float, float]:
    """(when `module` last finished before the first token, first-token time, generate end)."""
    finished: list[float] = []
    handle = module.register_forward_hook(lambda *_: finished.append(time.perf_counter()))
    clock = FirstTokenClock(DeviceClock("cpu"))
    try:
        family.generate(model, batch, max_new_tokens=MAX_NEW_TOKENS, clock=clock)
        end = time.perf_counter()
    finally:
        handle.remove()
    assert clock.first_token_at is not None and finished
    return finished[0], clock.first_token_at, end


def test_t5_first_token_covers_the_encoder_pass(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-t5")
    batch = family.prepare_batch(
        text_samples(), loaded.processor, device="cpu", max_input_tokens=64, chat_template=False
    )
    encoder_done, first_token, end = first_token_after(loaded.model.get_encoder(), family, loaded.model, batch)
    assert encoder_done <= first_token < end


# ---------------------------------------------------------------- multimodal


def test_paligemma_counts_image_tokens_as_input_never_as_generated(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-paligemma")
    processor = loaded.processor
    samples = SyntheticImages().load(synthetic_config(num_samples=2))
    batch = family.prepare_batch(samples, processor, device="cpu", max_input_tokens=64, chat_template=False)
    text_tokens = len(processor.tokenizer(samples[0].text)["input_ids"])
    # per sample: image tokens + <bos> + prompt + "\n"
    assert batch.n_input_tokens == 2 * (TINY_IMAGE_TOKENS + 1 + text_tokens + 1)
    assert "labels" not in batch.inputs and batch.inputs["pixel_values"].shape[0] == 2
    generated = family.generate(loaded.model, batch, max_new_tokens=MAX_NEW_TOKENS, clock=None)
    assert tuple(generated.new_tokens.shape) == (2, MAX_NEW_TOKENS)
    assert generated.n_generated_tokens == 2 * MAX_NEW_TOKENS
    assert not (generated.new_tokens == processor.image_token_id).any()
    assert len(family.decode(processor, generated)) == 2


def test_paligemma_first_token_covers_image_encoding(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-paligemma")
    samples = SyntheticImages().load(synthetic_config(num_samples=2))
    batch = family.prepare_batch(samples, loaded.processor, device="cpu", max_input_tokens=64, chat_template=False)
    vision_done, first_token, end = first_token_after(loaded.model.model.vision_tower, family, loaded.model, batch)
    assert vision_done <= first_token < end


def test_paligemma_output_depends_on_the_image(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-paligemma")
    prompt = "answer en what is this?"
    samples = [
        Sample("a", prompt, image=Image.new("RGB", (64, 64), "red")),
        Sample("b", prompt, image=Image.effect_noise((64, 64), 80).convert("RGB")),
    ]
    batch = family.prepare_batch(samples, loaded.processor, device="cpu", max_input_tokens=64, chat_template=False)
    tokens = family.generate(loaded.model, batch, max_new_tokens=MAX_NEW_TOKENS, clock=None).new_tokens
    assert not torch.equal(tokens[0], tokens[1])


def test_text_only_samples_get_a_blank_image(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-paligemma")
    assert blank_image(loaded.processor).size == (64, 64)  # the processor's input size
    batch = family.prepare_batch(
        text_samples(), loaded.processor, device="cpu", max_input_tokens=64, chat_template=True
    )
    assert batch.extra["metrics"] == {"image_tokens_per_sample": TINY_IMAGE_TOKENS, "blank_images": 2}
    generated = family.generate(loaded.model, batch, max_new_tokens=MAX_NEW_TOKENS, clock=None)
    assert generated.n_generated_tokens == 2 * MAX_NEW_TOKENS
    mixed = [text_samples()[0], *SyntheticImages().load(synthetic_config(num_samples=1))]
    batch = family.prepare_batch(mixed, loaded.processor, device="cpu", max_input_tokens=64, chat_template=False)
    assert batch.extra["metrics"]["blank_images"] == 1 and batch.inputs["pixel_values"].shape[0] == 2


def test_long_prompts_are_truncated_without_losing_image_tokens(compose_config, cache_dir):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-paligemma")
    long = Sample("long", "describe every detail of this picture " * 40, image=Image.new("RGB", (64, 64), "red"))
    batch = family.prepare_batch([long], loaded.processor, device="cpu", max_input_tokens=10, chat_template=False)
    ids = batch.inputs["input_ids"][0]
    assert batch.n_input_tokens == TINY_IMAGE_TOKENS + 10
    assert int((ids == loaded.processor.image_token_id).sum()) == TINY_IMAGE_TOKENS


def test_a_malformed_image_in_a_batch_names_the_file(compose_config, cache_dir, tmp_path):
    family, loaded = load_tiny(compose_config, cache_dir, "tiny-paligemma")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DatasetError, match=f"image file {bad} is not a readable image"):
        family.prepare_batch(
            [Sample("x", "p", image=str(bad))], loaded.processor, device="cpu", max_input_tokens=16, chat_template=False
        )


# ---------------------------------------------------------------- both families


@pytest.mark.parametrize("model", ["tiny-t5", "tiny-paligemma"])
def test_quality_hook_is_causal_next_token_logits(compose_config, cache_dir, model):
    family, loaded = load_tiny(compose_config, cache_dir, model)
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    ids = torch.tensor([tokenizer("the quick brown fox jumps over the lazy dog")["input_ids"]])
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 300
    with torch.inference_mode():
        logits = family.next_token_logits(loaded.model, loaded.processor, ids)
        logits_changed = family.next_token_logits(loaded.model, loaded.processor, changed)
    assert tuple(logits.shape) == (1, ids.shape[1], len(tokenizer))
    # row t sees tokens 0..t only: changing the last token changes the last row alone
    assert torch.allclose(logits[:, :-1], logits_changed[:, :-1])
    assert not torch.allclose(logits[:, -1], logits_changed[:, -1])


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "int8", "nf4"])
@pytest.mark.parametrize("model", ["tiny-t5", "tiny-paligemma"])
def test_every_dense_and_bitsandbytes_precision_generates(compose_config, cache_dir, model, precision):
    family, loaded = load_tiny(compose_config, cache_dir, model, precision)
    samples = SyntheticImages().load(synthetic_config(num_samples=2)) if model == "tiny-paligemma" else text_samples()
    batch = family.prepare_batch(samples, loaded.processor, device="cpu", max_input_tokens=64, chat_template=False)
    clock = FirstTokenClock(DeviceClock("cpu"))
    generated = family.generate(loaded.model, batch, max_new_tokens=MAX_NEW_TOKENS, clock=clock)
    assert generated.n_generated_tokens == 2 * MAX_NEW_TOKENS and clock.first_token_at is not None
    if precision in ("int8", "nf4"):
        import bitsandbytes as bnb

        quantized = (bnb.nn.Linear8bitLt, bnb.nn.Linear4bit)
        assert any(isinstance(module, quantized) for module in loaded.model.modules())


@pytest.mark.parametrize("backend", ["gptq", "awq"])
@pytest.mark.parametrize("family", ["encoder-decoder", "multimodal"])
def test_gptqmodel_backends_refuse_these_families_before_loading(backend, family):
    reason = registry.backends().get(backend).unsupported_reason(registry.families().get(family), None)
    assert reason and f"family '{family}'" in reason
