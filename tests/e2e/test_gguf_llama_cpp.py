"""GGUF types through llama.cpp on the tiny decoder for real: conversion, quantization, the cache, the
skipped row of a missing binding, quality on llama.cpp's logits and the tokenizer check."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from quantbench.backends.base import LoadRequest
from quantbench.config import registry
from quantbench.models.source import resolve_model
from quantbench.runtime.device import resolve_device

CPU = resolve_device("cpu")
needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)
TEXT_OVERRIDES = ["quality.context_tokens=64", "quality.stride=48", "quality.max_tokens=600"]


def test_missing_llama_cpp_python_is_a_skipped_row_that_says_how_to_install_it(tmp_path, monkeypatch):
    from support.app import run_app

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a)
    )
    run_dir, _ = run_app(["model=tiny-llama", "precision=gguf-q4_k_m", "hardware=cpu"], tmp_path, monkeypatch)
    (result_file,) = run_dir.rglob("result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "skipped"
    assert "pip install 'llama-cpp-python==0.3.36'" in result["reason"]


def load_gguf(compose_config, precision: str, overrides=()):
    cfg = compose_config(["model=tiny-llama", f"precision={precision}", "hardware=cpu", *overrides])
    family = registry.families().get("decoder")
    cache = Path(cfg.cache_dir)
    spec = resolve_model(cfg.model, family, cache)
    backend = registry.backends().get("gguf")
    return cfg, backend.load(
        LoadRequest(model=spec, family=family, precision=cfg.precision, device=CPU, cache_dir=cache)
    )


@needs_llama_cpp
def test_tiny_llama_converts_and_quantizes_to_two_types_and_hits_the_cache(compose_config):
    sizes = {}
    for precision, bits, mix in (("gguf-q8_0", 8.5, "Q8_0:14"), ("gguf-q4_0", 4.5, "Q4_0:14")):
        _, first = load_gguf(compose_config, precision)
        _, second = load_gguf(compose_config, precision)
        assert second.metrics["cache_hit"] is True and second.metrics["quantize_s"] == 0.0
        assert second.model.path == first.model.path and second.model.path.is_file()
        # 14 linear weights (2 blocks x q, k, v, o, gate, up, down), each block of 32 weights + one f16 scale
        assert second.metrics["tensor_types"] == mix
        assert second.metrics["bits_per_weight"] == pytest.approx(bits)
        sizes[precision] = second.metrics["checkpoint_size_gb"]
    assert sizes["gguf-q4_0"] < sizes["gguf-q8_0"]


@needs_llama_cpp
def test_a_cache_hit_reads_what_the_file_holds_from_its_manifest_not_from_the_file(compose_config, monkeypatch):
    from quantbench.cache import MANIFEST_FILE, read_manifest
    from quantbench.gguf import store
    from quantbench.gguf.files import describe_file

    _, first = load_gguf(compose_config, "gguf-q8_0")
    entry = first.model.path.parent
    # An entry made before the manifest held the facts: parsed once, and its manifest completed.
    manifest = read_manifest(entry)
    manifest["built"].pop(store.FILE_FACTS, None)
    (entry / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert store.file_facts(entry) == read_manifest(entry)["built"][store.FILE_FACTS]
    monkeypatch.setattr(store, "describe_file", lambda path: pytest.fail(f"parsed {path} again on a cache hit"))
    _, hit = load_gguf(compose_config, "gguf-q8_0")
    assert hit.metrics["cache_hit"] is True
    described = describe_file(hit.model.path)
    assert {key: hit.metrics[key] for key in described} == described
    assert store.gguf_details(hit.model.path.parent).startswith("GGUF q8_0, 8.50 bits/weight")


@needs_llama_cpp
def test_the_gguf_tokenizer_must_cut_the_text_like_the_models_tokenizer(compose_config):
    from quantbench.engines.llama_cpp import open_llama
    from quantbench.models.tokenizer import train_tokenizer
    from quantbench.quality.llama_cpp_logits import CheckedTokenizer, TokenizerMismatch

    _, loaded = load_gguf(compose_config, "gguf-q8_0")
    llm = open_llama(loaded.model.path, n_ctx=64, threads=1, logits_all=False, seed=0, gpu=False)
    text = " = Robert Boulter =\n\nRobert Boulter is an English film actor ."
    same = CheckedTokenizer(loaded.processor, llm)
    assert same(text, add_special_tokens=False)["input_ids"]
    assert same.texts_cut_differently == 0
    other = CheckedTokenizer(train_tokenizer(), llm)  # a byte-level BPE tokenizer: its ids are other text to the file
    with pytest.raises(
        TokenizerMismatch, match="reads the model's tokens as other text than the evaluation text, from token 0"
    ):
        other(text, add_special_tokens=False)


@needs_llama_cpp
def test_gguf_job_measures_speed_and_quality_against_the_fp32_reference(compose_config, shared_data, tmp_path):
    from quantbench.runtime.progress import JobProgress
    from quantbench.scenarios.offline import measure_offline

    overrides = [
        "quality=[ppl,kld]",
        f"quality.data_dir={shared_data}",
        *TEXT_OVERRIDES,
        "bench.min_iterations=2",
        "bench.min_seconds=0",
        "bench.warmup_iterations=1",
        "bench.max_new_tokens=8",
    ]
    metrics = {}
    for precision in ("gguf-q8_0", "gguf-q4_0"):
        cfg = compose_config(
            ["model=tiny-llama", f"precision={precision}", "hardware=cpu", "hardware.threads=1", *overrides]
        )
        metrics[precision], outputs = measure_offline(
            cfg, CPU, tmp_path / precision, JobProgress(precision, bars=False, lines=False)
        )
        assert (tmp_path / precision / "iterations.parquet").is_file()
        assert outputs and metrics[precision]["threads"] == 1
        assert metrics[precision]["engine"] == "llama.cpp" and metrics[precision]["generation_tokens_per_s"] > 0
        assert metrics[precision]["kld_reference"] == "fp32"
    assert 0 < metrics["gguf-q8_0"]["kld_mean"] < metrics["gguf-q4_0"]["kld_mean"]


@needs_llama_cpp
def test_the_timed_gguf_job_opens_no_llama_context_beside_its_decoder(compose_config, tmp_path, monkeypatch):
    """A `Llama` holds a context and KV cache of its own; the timed steps decode through the batch
    decoder's context alone, so without quality scoring no `Llama` is ever made (its memory and its
    opening would count in load_s and peak memory)."""
    import llama_cpp

    from quantbench.runtime.progress import JobProgress
    from quantbench.scenarios.offline import measure_offline

    opened = []

    class CountedLlama(llama_cpp.Llama):
        def __init__(self, *args, **kwargs):
            opened.append(kwargs.get("model_path"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", CountedLlama)
    cfg = compose_config(
        ["model=tiny-llama", "precision=gguf-q8_0", "hardware=cpu", "hardware.threads=1", "batch=2"]
        + ["bench.min_iterations=2", "bench.min_seconds=0", "bench.warmup_iterations=0", "bench.max_new_tokens=4"]
    )
    metrics, outputs = measure_offline(cfg, CPU, tmp_path, JobProgress("gguf", bars=False, lines=False))
    assert opened == []
    assert len(outputs) == 2 and metrics["generation_tokens_per_s"] > 0 and metrics["load_s"] > 0


def greedy_alone(llm, prompt: list[int], new_tokens: int) -> list[int]:
    """One prompt through llama-cpp-python's own single-sequence Llama.eval: the reference of the batch API."""
    import numpy as np

    llm.reset()
    llm.eval(prompt)
    tokens = [int(np.argmax(llm.scores[llm.n_tokens - 1]))]
    while len(tokens) < new_tokens:
        llm.eval([tokens[-1]])
        tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
    return tokens


@needs_llama_cpp
def test_prompts_decoded_together_get_the_greedy_tokens_each_gets_alone(compose_config, tmp_path):
    import polars as pl

    from quantbench.engines.llama_cpp import open_llama
    from quantbench.gguf.binding import import_binding
    from quantbench.gguf.decode import BatchDecoder, DecodeShape
    from quantbench.runtime.progress import JobProgress
    from quantbench.scenarios.offline import measure_offline

    new_tokens = 12
    _, loaded = load_gguf(compose_config, "gguf-q8_0")
    texts = ["The study found that", "Patients with diabetes", "= Robert Boulter =", "In 1998 the council"]
    prompts = [list(loaded.processor(text)["input_ids"]) for text in texts]
    llm = open_llama(loaded.model.path, n_ctx=64, threads=1, logits_all=True, seed=0, gpu=False)
    alone = [greedy_alone(llm, prompt, new_tokens) for prompt in prompts]
    assert len({tuple(tokens) for tokens in alone}) > 1  # the prompts lead to different continuations
    decoder = BatchDecoder(
        import_binding(),
        llm.model,
        DecodeShape(n_seq=4, prompt_tokens=max(map(len, prompts)), new_tokens=new_tokens),
        threads=1,
    )
    assert decoder.generate(prompts, new_tokens) == alone
    assert decoder.generate(prompts[:1], new_tokens) == alone[:1]  # a cleared cache: the first call left nothing behind
    decoder.close()

    bench = [
        "bench.min_iterations=1",
        "bench.min_seconds=0",
        "bench.warmup_iterations=0",
        f"bench.max_new_tokens={new_tokens}",
    ]
    outputs = {}
    for batch in (1, 4):
        cfg = compose_config(
            ["model=tiny-llama", "precision=gguf-q8_0", "hardware=cpu", "hardware.threads=1", f"batch={batch}", *bench]
        )
        metrics, outputs[batch] = measure_offline(
            cfg, CPU, tmp_path / f"b{batch}", JobProgress(f"b{batch}", bars=False, lines=False)
        )
        assert metrics["generation_tokens_per_s"] > 0 and metrics["ttft_p50_ms"] > 0
        iterations = pl.read_parquet(tmp_path / f"b{batch}" / "iterations.parquet")
        assert iterations["n_generated_tokens"].to_list() == [batch * new_tokens]  # exactly max_new_tokens per prompt
        assert iterations["batch"].to_list() == [batch]
    assert len(outputs[4]) == 4 and outputs[4][0] == outputs[1][0]


@needs_llama_cpp
def test_full_precision_gguf_perplexity_from_llama_cpp_agrees_with_fp32_transformers(
    compose_config, shared_data, tmp_path
):
    """llama.cpp's logits scored by quantbench's perplexity, against torch's on the same windows: the
    same model at f32 must give the same perplexity (within 1%), or the scoring path is wrong."""
    from quantbench.runtime.progress import JobProgress
    from quantbench.scenarios.offline import measure_offline

    overrides = [
        "model=tiny-llama",
        "hardware=cpu",
        "hardware.threads=1",
        "quality=[ppl]",
        f"quality.data_dir={shared_data}",
        *TEXT_OVERRIDES,
        "bench.min_iterations=1",
        "bench.min_seconds=0",
        "bench.warmup_iterations=0",
        "bench.max_new_tokens=2",
    ]
    gguf, _ = measure_offline(
        compose_config(["precision=gguf-f32", *overrides]),
        CPU,
        tmp_path / "gguf",
        JobProgress("gguf-f32", bars=False, lines=False),
    )
    torch_fp32, _ = measure_offline(
        compose_config(["precision=fp32", *overrides]),
        CPU,
        tmp_path / "fp32",
        JobProgress("fp32", bars=False, lines=False),
    )
    assert gguf["gguf_type"] == "f32" and gguf["bits_per_weight"] == pytest.approx(32)
    assert gguf["ppl_n_tokens"] == torch_fp32["ppl_n_tokens"] > 0
    assert gguf["ppl"] == pytest.approx(torch_fp32["ppl"], rel=0.01)
