"""A real sweep with perplexity, KL divergence and PubMedQA fills every quality column."""

from __future__ import annotations

import polars as pl
import pytest

from quantbench.quality.pubmedqa import (
    CHOICES,
)


# ~19 s on 2 cores; tests/quality/ scores each metric by default, tests/e2e/test_gguf_llama_cpp.py in a job.
@pytest.mark.slow
def test_sweep_fills_the_quality_columns(tmp_path, run_quantbench, shared_data):
    sweep = run_quantbench(
        [
            "-m",
            "model=tiny-llama",
            "precision=fp32,nf4",
            "quality=[ppl,kld,pubmedqa]",
            "quality.limit=2",
            f"quality.data_dir={shared_data}",
            "quality.context_tokens=128",
            "quality.stride=128",
            "bench=quick",
        ],
        tmp_path,
    )
    frame = pl.read_parquet(sweep / "summary.parquet")
    assert frame["status"].to_list() == ["ok", "ok"], frame.select("precision", "reason")
    columns = [
        "ppl",
        "ppl_ci_low",
        "ppl_ci_high",
        "ppl_n_tokens",
        "ppl_context_tokens",
        "ppl_stride",
        "kld_mean",
        "kld_mean_ci_low",
        "kld_mean_ci_high",
        "kld_median",
        "kld_p90",
        "kld_p99",
        "kld_max",
        "top1_agree",
        "pubmedqa_acc",
        "pubmedqa_acc_ci_low",
        "pubmedqa_acc_ci_high",
        "pubmedqa_n",
    ]
    for column in columns:
        assert frame[column].null_count() == 0, column
    rows = {row["precision"]: row for row in frame.iter_rows(named=True)}
    assert rows["fp32"]["kld_mean"] == 0 and rows["fp32"]["top1_agree"] == 100.0
    assert rows["nf4"]["kld_mean"] > 0
    assert rows["fp32"]["ppl_n_tokens"] == rows["nf4"]["ppl_n_tokens"] == 2 * 127
    assert rows["fp32"]["pubmedqa_n"] == 2
    for job in ("0", "1"):
        predictions = pl.read_parquet(sweep / job / "pubmedqa_predictions.parquet")
        assert predictions.height == 2 and set(predictions["prediction"]) <= set(CHOICES)
        assert predictions["correct"].to_list() == (predictions["prediction"] == predictions["answer"]).to_list()
