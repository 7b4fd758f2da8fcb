"""The KV cache's precision for real on tiny-llama: llama.cpp's quantized caches offline (the timed
decoder and the quality pass), their quality against an f16 cache of the same GGUF file on the same
tokens, and transformers' quantized cache in generate()."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from quantbench.runtime.device import resolve_device
from quantbench.runtime.progress import JobProgress

CPU = resolve_device("cpu")
needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)
# Windows as long as tiny-llama's cheap passes allow (its context: 1024 tokens).
TEXT = ["quality.context_tokens=256", "quality.stride=256", "quality.max_tokens=512"]
QUICK = ["bench.min_iterations=1", "bench.min_seconds=0", "bench.warmup_iterations=0", "bench.max_new_tokens=4"]


def measure(compose_config, tmp_path, name: str, overrides: list[str]):
    from quantbench.scenarios.offline import measure_offline

    cfg = compose_config(["model=tiny-llama", "hardware=cpu", "hardware.threads=1", *QUICK, *overrides])
    return measure_offline(cfg, CPU, tmp_path / name, JobProgress(name, bars=False, lines=False))


@needs_llama_cpp
def test_an_f16_cache_scored_twice_is_its_own_reference_exactly(compose_config, shared_data):
    """The f16 cache against itself (two contexts, same windows): KL exactly 0, every top-1 the same,
    the perplexity ratio exactly 1. A quantized cache's divergence is then the cache's alone."""
    import torch

    from quantbench.backends.base import LoadRequest
    from quantbench.config import registry
    from quantbench.engines.llama_cpp import open_llama
    from quantbench.models.source import resolve_model
    from quantbench.quality.cache_precision import CacheComparison
    from quantbench.quality.llama_cpp_logits import LlamaCppScorer
    from quantbench.quality.text import compute_reference, evaluation_windows, scored_log_probs

    cfg = compose_config(["model=tiny-llama", "precision=gguf-q8_0", f"quality.data_dir={shared_data}", *TEXT])
    family = registry.families().get("decoder")
    cache_dir = Path(cfg.cache_dir)
    spec = resolve_model(cfg.model, family, cache_dir)
    request = LoadRequest(model=spec, family=family, precision=cfg.precision, device=CPU, cache_dir=cache_dir)
    loaded = registry.backends().get("gguf").load(request)
    scorers = [
        LlamaCppScorer(
            open_llama(loaded.model.path, n_ctx=256, threads=1, logits_all=True, seed=0, gpu=False, cache_type="f16"),
            None,
            loaded.processor,
            1024,
            1024,
        )
        for _ in range(2)
    ]
    windows = evaluation_windows(cfg.quality, scorers[0].processor)
    comparison = CacheComparison(compute_reference(scorers[0], windows, 32), windows.digest(), "f16")
    comparison.start(windows)
    for log_probs, targets in scored_log_probs(scorers[1], windows):
        comparison.add(log_probs, targets)
    metrics = comparison.metrics(confidence=0.95, windows=windows)
    assert metrics["kv_cache_kld_mean"] == 0.0 and metrics["kv_cache_kld_max"] == 0.0
    assert metrics["kv_cache_top1_agree"] == 100.0 and metrics["kv_cache_ppl_ratio"] == 1.0
    assert metrics["kv_cache_ppl"] == pytest.approx(metrics["kv_cache_reference_ppl"], rel=1e-12)
    assert metrics["kv_cache_ppl_n_tokens"] == windows.n_scored == 510
    assert torch.isfinite(torch.tensor(metrics["kv_cache_ppl"]))


@needs_llama_cpp
def test_a_q4_0_cache_is_measured_against_the_f16_cache_of_the_same_file(compose_config, shared_data, tmp_path):
    quality = ["quality=[ppl,kld]", f"quality.data_dir={shared_data}", *TEXT]
    metrics, outputs = measure(
        compose_config, tmp_path, "q4_0", ["precision=gguf-q8_0", "engine.kv_cache_dtype=q4_0", *quality]
    )
    assert outputs and metrics["generation_tokens_per_s"] > 0  # the timed decoder ran on the q4_0 cache
    assert metrics["kv_cache_dtype"] == "q4_0" and metrics["flash_attn"] == "on"
    assert metrics["kv_cache_bytes_per_token"] == 144  # 2 x 2 layers x 2 heads x 32 values x 18/32 bytes
    assert metrics["kv_cache_reference"].startswith("f16 cache of the same GGUF file")
    assert 0 < metrics["kv_cache_kld_mean"] and metrics["kv_cache_top1_agree"] < 100
    assert metrics["kv_cache_ppl_ratio"] != 1.0 and metrics["kv_cache_ppl_n_tokens"] == metrics["ppl_n_tokens"]
    assert metrics["kv_cache_ppl"] == pytest.approx(metrics["ppl"], rel=1e-9)  # the job's own pass, both
    # The job's KL against fp32 holds weights and cache together: at least the cache's share of it.
    assert metrics["kld_reference"] == "fp32" and metrics["kld_mean"] > 0
    cache_dir = Path(compose_config([]).cache_dir)
    entries = list((cache_dir / "reference").glob("tiny-llama-q8_0-*-kv-f16-*"))
    assert len(entries) == 1  # the f16 cache's distributions, cached for the next cache type

    q8, _ = measure(compose_config, tmp_path, "q8_0", ["precision=gguf-q8_0", "engine.kv_cache_dtype=q8_0", *quality])
    assert 0 < q8["kv_cache_kld_mean"] < metrics["kv_cache_kld_mean"]
    assert q8["kv_cache_reference_ppl"] == metrics["kv_cache_reference_ppl"]  # the same cached f16 reference


@needs_llama_cpp
def test_an_unknown_llama_cpp_cache_type_skips_the_offline_job(compose_config, tmp_path):
    from quantbench.errors import JobSkipped

    with pytest.raises(JobSkipped, match="choose one of: f32, f16, bf16, q8_0"):
        measure(compose_config, tmp_path, "bad", ["precision=gguf-q8_0", "engine.kv_cache_dtype=q2_k"])


def test_transformers_offline_generates_with_the_quantized_cache(compose_config, tmp_path, monkeypatch):
    import transformers.generation.utils as generation

    made = []
    library_cache = generation.QuantizedCache

    def spy(*args, **kwargs):
        made.append(kwargs.get("backend"))
        return library_cache(*args, **kwargs)

    monkeypatch.setattr(generation, "QuantizedCache", spy)
    # HQQ, not quanto: quanto compiles its C++ unpacking extension on first use (minutes on 2 cores).
    metrics, outputs = measure(
        compose_config, tmp_path, "hqq", ["precision=fp32", "engine=transformers", "engine.kv_cache_dtype=hqq-int4"]
    )
    assert made == ["hqq"] and outputs  # one generate() call (min_iterations=1, no warm-up)
    assert metrics["kv_cache_dtype"] == "hqq-int4"
    # 256 values per token at 4 bits, and a float32 scale and zero per group of 64: 0.625 bytes each
    assert metrics["kv_cache_bytes_per_token"] == 160
    assert (metrics["kv_cache_group_size"], metrics["kv_cache_residual_tokens"]) == (64, 128)


def test_a_sequence_read_in_chunks_through_the_models_cache_scores_as_in_one_pass(compose_config):
    """The chunked scorer's positions and cache are right: through the model's own cache (DynamicCache)
    it gives the one-pass log-probabilities, so a quantized cache's difference is the cache's."""
    import torch
    from transformers import DynamicCache

    from quantbench.backends.base import LoadRequest
    from quantbench.config import registry
    from quantbench.models.source import resolve_model
    from quantbench.quality.cache_scorer import ChunkedCacheScorer
    from quantbench.quality.scoring import TokenScorer

    cfg = compose_config(["model=tiny-llama", "precision=fp32"])
    family = registry.families().get("decoder")
    spec = resolve_model(cfg.model, family, Path(cfg.cache_dir))
    request = LoadRequest(model=spec, family=family, precision=cfg.precision, device=CPU, cache_dir=Path(cfg.cache_dir))
    loaded = registry.backends().get("fp32").load(request)
    tokens = list(range(5, 305))
    one_pass = TokenScorer(family, loaded.model, loaded.processor, "cpu").log_probs(tokens, last=201)
    chunked = ChunkedCacheScorer(
        family, loaded.model, loaded.processor, "cpu", lambda: DynamicCache(config=loaded.model.config), 128
    )
    assert torch.allclose(chunked.log_probs(tokens, last=201), one_pass, atol=1e-4)
    assert chunked.log_probs(tokens).shape == (300, one_pass.shape[1])


@pytest.mark.slow  # ~7 s in the suite; the cheap tests above cover the quantized cache in generate()
def test_transformers_quantized_cache_quality_against_the_models_own_cache(compose_config, shared_data, tmp_path):
    quality = ["quality=[ppl,kld]", f"quality.data_dir={shared_data}", *TEXT]
    metrics, _ = measure(
        compose_config,
        tmp_path,
        "hqq2",
        ["precision=fp32", "engine=transformers", "engine.kv_cache_dtype=hqq-int2", *quality],
    )
    assert metrics["kv_cache_reference"].startswith("the model's own cache (float32), the same 128-token chunks")
    assert metrics["kv_cache_chunk_tokens"] == 128 and metrics["kv_cache_ppl_n_tokens"] == metrics["ppl_n_tokens"]
    assert metrics["kv_cache_kld_mean"] > 0 and metrics["kv_cache_ppl_ratio"] != 1.0
    # The job is at fp32, the reference precision, but its scores went through a 2-bit cache: the fp32
    # reference was scored from the plain model, so a plain fp32 job against it diverges by exactly 0.
    assert metrics["kld_reference"] == "fp32" and metrics["kld_mean"] > 0
    plain, _ = measure(compose_config, tmp_path, "fp32", ["precision=fp32", *quality])
    assert plain["kld_mean"] == 0.0 and plain["kv_cache_dtype"] == "model dtype (float32)"
