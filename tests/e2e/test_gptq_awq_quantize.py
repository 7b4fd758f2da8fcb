"""GPTQ and AWQ through gptqmodel for real: sweeps on the tiny model (quantize once, then hit the cache)
and a slow real-model check."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from quantbench.backends.base import LoadRequest
from quantbench.backends.gptq_awq import GENERIC_KERNELS
from quantbench.config import registry
from quantbench.models.source import resolve_model
from quantbench.runtime.device import resolve_device

pytest.importorskip("gptqmodel")


# ~90 s on 2 cores; tests/backends/test_gptq_awq.py covers the cache keys and the loading by default.
@pytest.mark.slow
def test_tiny_llama_gptq_awq_quantize_once_then_hit_the_cache(tmp_path, run_quantbench, monkeypatch):
    monkeypatch.chdir(tmp_path)  # to see that nothing is written into the working directory
    # A cache of its own: the first run must quantize, whatever the session cache holds.
    args = ["-m", "model=tiny-llama", "precision=gptq,awq", "bench=quick", f"cache_dir={tmp_path / 'cache'}"]
    first = pl.read_parquet(run_quantbench([*args, "batch=1,4"], tmp_path / "first") / "summary.parquet")
    assert first["status"].to_list() == ["ok"] * 4, first.select("precision", "batch", "reason")
    assert first.select("precision", "batch").rows() == [("gptq", 1), ("gptq", 4), ("awq", 1), ("awq", 4)]
    # within the sweep the first job of each method quantizes, the second finds its checkpoint
    assert first["cache_hit"].to_list() == [False, True, False, True]
    assert all(seconds > 0 for seconds in first["quantize_s"].to_list()[::2])
    assert first["quantize_s"].to_list()[1::2] == [0.0, 0.0]
    # a fast CPU kernel (TorchCpuAvx512Linear / TorchCpuAvx512AwqLinear on an AVX-512 CPU), never the generic one
    kernels = dict(zip(first["precision"], first["kernel"]))
    assert kernels["awq"].endswith("AwqLinear") and not kernels["gptq"].endswith("AwqLinear")
    assert not set(kernels.values()) & {*GENERIC_KERNELS, "none"}, kernels
    assert (first["checkpoint_size_gb"] > 0).all() and (
        first["checkpoint_size_gb"] < 0.0017
    ).all()  # under fp32's 1.7 MB
    assert (first["tokens_per_s"] > 0).all()

    # a later sweep finds both checkpoints
    second = pl.read_parquet(run_quantbench([*args, "batch=1"], tmp_path / "second") / "summary.parquet")
    assert second["status"].to_list() == ["ok"] * 2
    assert second["cache_hit"].to_list() == [True] * 2 and second["quantize_s"].to_list() == [0.0] * 2
    assert second["checkpoint_size_gb"].to_list() == first["checkpoint_size_gb"].to_list()[::2]

    # a cached checkpoint, pointed at as a pre-quantized model: loaded as it is, nothing calibrated
    entry = next((tmp_path / "cache" / "quantized").glob("tiny-llama-gptq-*"))
    run = run_quantbench(
        [
            "model=local",
            "model.name=tiny-gptq",
            f"model.path={entry}",
            "model.prequantized=gptq",
            "precision=gptq",
            "bench=quick",
            f"cache_dir={tmp_path / 'cache'}",
        ],
        tmp_path / "prequantized",
    )
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["prequantized"] is True and metrics["quantize_s"] == 0.0 and metrics["cache_hit"] is False
    assert (metrics["bits"], metrics["group_size"], metrics["kernel"]) == (4, 128, kernels["gptq"])
    assert len(list((tmp_path / "cache" / "quantized").iterdir())) == 2  # no new entry
    # gptqmodel's own per-layer logs and disk offload stayed inside the cache's scratch space, now removed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "first", "prequantized", "second"]
    assert not any((tmp_path / "cache" / "tmp").iterdir())


@pytest.mark.slow
def test_smollm2_gptq_loss_stays_near_fp32(compose_config, cache_dir):
    """GPTQ-4bit of SmolLM2-135M (about 1.5 minutes on 2 cores): the checkpoint is not garbage."""
    import torch

    from quantbench.data.builtin import builtin_corpus

    cfg = compose_config(["model=smollm2-135m", "precision=gptq"])
    family = registry.families().get("decoder")
    spec = resolve_model(cfg.model, family, cache_dir)
    device = resolve_device("cpu")
    loaded = (
        registry.backends()
        .get("gptq")
        .load(LoadRequest(model=spec, family=family, precision=cfg.precision, device=device, cache_dir=cache_dir))
    )
    assert loaded.metrics["group_size"] == 64 and loaded.metrics["kernel"] not in GENERIC_KERNELS
    reference = family.from_pretrained(spec.load_path, dtype=torch.float32)
    tokenizer = loaded.processor
    prompts = builtin_corpus()[:16]

    def mean_loss(model) -> float:
        losses = []
        with torch.inference_mode():
            for prompt in prompts:
                ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
                losses.append(float(model(input_ids=ids, labels=ids).loss))
        return sum(losses) / len(losses)

    fp32_loss, gptq_loss = mean_loss(reference), mean_loss(loaded.model)
    assert math.isfinite(gptq_loss)
    # Random or mis-packed weights score near log(vocab) = 10.8 nats. Measured with gptqmodel 7.7:
    # fp32 4.17, GPTQ 4.46 (docs/results/gptq_awq_cpu.md); 0.75 nats is perplexity x2.1 at most.
    assert gptq_loss < fp32_loss + 0.75, (fp32_loss, gptq_loss)
