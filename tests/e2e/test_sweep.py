"""End-to-end: real in-process Hydra runs and sweeps on the tiny model, and one real-model run."""

from __future__ import annotations

import json

import polars as pl
import pytest

from quantbench.collect.sweeps import METRIC_COLUMNS

QUICK = ["model=tiny-llama", "bench=quick"]


def test_multirun_over_precisions_and_batches(tmp_path, run_quantbench):
    sweep = run_quantbench(["-m", *QUICK, "precision=fp32,bf16,int8,nf4", "batch=1,4"], tmp_path)
    frame = pl.read_parquet(sweep / "summary.parquet")
    assert frame.height == 8
    assert frame["status"].to_list() == ["ok"] * 8, frame.select("precision", "batch", "reason")
    assert pl.read_csv(sweep / "summary.csv").height == 8
    for column in METRIC_COLUMNS:
        assert frame[column].null_count() == 0, column
    for batch in (1, 4):
        rows = frame.filter(pl.col("batch") == batch)
        # min_new_tokens == max_new_tokens: every precision generates exactly the same count
        assert rows["generated_tokens_per_iteration"].unique().to_list() == [batch * 8]
        assert rows["input_tokens_per_iteration"].n_unique() == 1
    assert (frame["tokens_per_s"] > 0).all() and (frame["qps"] > 0).all()
    assert (frame["latency_p50_ms"] <= frame["latency_p99_ms"]).all()
    assert (frame["ttft_p50_ms"] < frame["latency_p50_ms"] * 1.5).all()
    # quantized weights are smaller than fp32 ones
    weights = dict(frame.filter(pl.col("batch") == 1).select("precision", "weight_memory_gb").iter_rows())
    assert weights["nf4"] < weights["int8"] < weights["fp32"]
    assert weights["bf16"] < weights["fp32"]

    job = sweep / "0"
    result = json.loads((job / "result.json").read_text())
    assert result["status"] == "ok" and result["config"]["batch"] in (1, 4)
    assert result["environment"]["versions"]["torch"]
    iterations = pl.read_parquet(job / "iterations.parquet")
    assert iterations.height == result["metrics"]["n_iterations"] == 3
    assert set(iterations.columns) >= {"latency_ms", "ttft_ms", "tpot_ms", "n_generated_tokens"}


# ~15 s on 2 cores; tests/cli/test_overrides.py checks the `++` rewriting by default.
@pytest.mark.slow
def test_a_setting_of_a_swept_group_applies_to_the_options_that_have_it(tmp_path, run_quantbench):
    # Plain Hydra rejects this sweep: it composes the sweep-level config with the default fp32,
    # which has no quant_type.
    sweep = run_quantbench(["-m", *QUICK, "precision=fp32,nf4", "precision.quant_type=fp4"], tmp_path)
    configs = {
        result["config"]["precision"]["name"]: result["config"]["precision"]
        for result in (json.loads((sweep / job / "result.json").read_text()) for job in ("0", "1"))
    }
    assert configs["nf4"]["quant_type"] == "fp4"
    assert pl.read_parquet(sweep / "summary.parquet")["status"].to_list() == ["ok", "ok"]


def test_a_misspelt_setting_of_a_swept_group_is_one_line(tmp_path, run_quantbench, capsys):
    with pytest.raises(AssertionError, match="exited with 2"):
        run_quantbench(["-m", *QUICK, "precision=fp32,nf4", "precision.quant_tpye=fp4"], tmp_path)
    error = capsys.readouterr().err.strip()
    assert error == (
        "quantbench: 'precision.quant_tpye' is not a setting of any swept precision (fp32, nf4); "
        "did you mean 'precision.quant_type'?"
    )


def test_single_run_prints_a_table(tmp_path, run_quantbench, capsys):
    run_dir = run_quantbench([*QUICK, "precision=bf16", "batch=2"], tmp_path)
    assert "tiny-llama" in capsys.readouterr().out
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "ok" and result["identity"]["precision"] == "bf16"


# Slow (100-180 s on 2 cores): it materialises SmolLM2 from its GGUF into a fresh cache. The default
# tier composes and validates the default model's config (tests/config); the slow tier runs it.
@pytest.mark.slow
def test_smollm2_generates_real_text(tmp_path, run_quantbench):
    run_dir = run_quantbench(
        ["model=smollm2-135m", "precision=fp32", "batch=2", "bench=quick", "bench.max_new_tokens=12"], tmp_path
    )
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "ok", result["reason"]
    texts = result["sample_output"]
    assert len(texts) == 2
    for text in texts:
        words = text.split()
        assert len(words) >= 3, texts
        assert sum(word.strip(".,!?").isalpha() for word in words) >= 2, texts  # words, not byte soup
    metrics = result["metrics"]
    for key in (
        "qps",
        "tokens_per_s",
        "latency_p50_ms",
        "ttft_p50_ms",
        "tpot_p50_ms",
        "peak_memory_gb",
        "weight_memory_gb",
        "load_s",
    ):
        assert metrics[key] > 0, key
    # 135M parameters in float32 is about 0.54 GB of weights (embeddings tied)
    assert 0.4 < metrics["weight_memory_gb"] < 0.7
    assert "Q4_1" in metrics["model_note"]
