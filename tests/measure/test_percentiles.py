"""Honest tails: each percentile with its sample count, its bootstrap interval, and the report's
`p99*`/`p95*` flag where the samples do not resolve it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.measure.percentiles import is_unresolved, min_samples, parse_percentile_column, percentile_metrics
from quantbench.report.build import build_document
from quantbench.report.markdown import render_markdown

TWO_PRECISIONS = (SyntheticPrecision("fp32", 1.0, 0.5, 1.0), SyntheticPrecision("bf16", 1.5, 0.25, 0.6))


def test_a_percentile_needs_a_sample_beyond_it():
    assert (min_samples(50), min_samples(95), min_samples(99), min_samples(99.9)) == (1, 20, 100, 1000)
    assert is_unresolved(99, 99) and not is_unresolved(99, 100)
    assert is_unresolved(95, 19) and not is_unresolved(95, 20)
    assert parse_percentile_column("latency_p99_ms") == ("latency", 99.0)
    assert parse_percentile_column("ttft_p95_ms") == ("ttft", 95.0)
    assert parse_percentile_column("tokens_per_s") is None


def test_percentile_metrics_carry_their_count_and_a_bootstrap_interval():
    values = np.random.default_rng(1).lognormal(4.6, 0.2, 200)
    metrics = percentile_metrics("latency", values, (50, 95, 99))
    assert metrics["n_latency_samples"] == 200
    assert metrics["latency_p99_ms"] == pytest.approx(np.percentile(values, 99))
    for q in (95, 99):
        low, high = metrics[f"latency_p{q}_ms_ci_low"], metrics[f"latency_p{q}_ms_ci_high"]
        assert low <= metrics[f"latency_p{q}_ms"] <= high and low < high
    assert "latency_p50_ms_ci_low" not in metrics  # only the tails
    one = percentile_metrics("latency", [5.0], (99,))
    assert one["n_latency_samples"] == 1 and math.isnan(one["latency_p99_ms_ci_low"])


def _performance_section(sweep_dir) -> str:
    markdown = render_markdown(build_document(analyze(sweep_dir), [], sweep_dir))
    return markdown.split("## Performance", 1)[1].split("\n## ", 1)[0]


def test_a_report_with_10_iterations_flags_p95_and_p99(tmp_path):
    sweep = write_sweep(tmp_path / "few", SyntheticSweep(precisions=TWO_PRECISIONS, batches=(1,), iterations=10))
    section = _performance_section(sweep)
    header = next(line for line in section.splitlines() if line.startswith("| Batch"))
    assert "| p95* ms |" in header and "| p99* ms |" in header and "| p50 ms |" in header
    assert "p95 from as few as 10 samples (it needs at least 20" in section
    assert "p99 from as few as 10 samples (it needs at least 100" in section


def test_a_report_with_enough_iterations_flags_nothing(tmp_path):
    sweep = write_sweep(tmp_path / "many", SyntheticSweep(precisions=TWO_PRECISIONS, batches=(1,), iterations=100))
    section = _performance_section(sweep)
    assert "| p95 ms |" in section and "| p99 ms |" in section
    assert "*" not in section.split("| Batch", 1)[1].splitlines()[0]
    assert "samples (it needs" not in section


def test_the_summary_carries_counts_and_tail_intervals(tmp_path):
    import polars as pl

    sweep = write_sweep(tmp_path / "s", SyntheticSweep(precisions=TWO_PRECISIONS, batches=(1,), iterations=30))
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary["n_latency_samples"].to_list() == [30, 30]
    assert summary["n_ttft_samples"].to_list() == [30, 30]
    assert (summary["latency_p99_ms_ci_low"] <= summary["latency_p99_ms"]).all()
    assert (summary["latency_p99_ms"] <= summary["latency_p99_ms_ci_high"]).all()
