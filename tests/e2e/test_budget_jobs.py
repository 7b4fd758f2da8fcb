"""The time budget in a real job: result.json, the summary and the report say what was cut
(the loop's decisions: tests/measure/test_budget.py)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from quantbench.report import write_report

QUICK_JOB = ["model=tiny-llama", "bench.max_new_tokens=4", "bench.max_input_tokens=32", "analysis.report_at_end=false"]


def test_a_job_cut_by_its_budget_records_it(tmp_path, run_quantbench):
    """A tiny-llama job asking for 3 warm-up and 50 timed iterations within budgets of zero
    seconds: one warm-up iteration, exactly three timed ones, and both cuts recorded."""
    sweep = run_quantbench(
        [
            "-m",
            *QUICK_JOB,
            "bench.warmup_iterations=3",
            "bench.warmup_max_seconds=0",
            "bench.min_iterations=50",
            "bench.max_seconds=0",
        ],
        tmp_path,
    )
    result = json.loads(next(sweep.glob("*/result.json")).read_text())
    assert result["status"] == "ok"
    metrics = result["metrics"]
    assert metrics["n_iterations"] == 3 and metrics["warmup_iterations_done"] == 1
    assert metrics["budget_cut"] is True
    assert "bench.warmup_max_seconds=0" in metrics["budget_cut_reason"]
    assert "bench.max_seconds=0" in metrics["budget_cut_reason"]
    assert pl.read_parquet(next(sweep.glob("*/iterations.parquet"))).height == 3
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary["budget_cut"].to_list() == [True]
    report = write_report(sweep).markdown.read_text()
    assert "1 job(s) cut by their time budget" in report and "bench.max_seconds=0 after 3 iterations" in report


def test_an_unlimited_budget_runs_what_the_minimums_ask(tmp_path, run_quantbench):
    run_dir = run_quantbench(
        [*QUICK_JOB, "bench=quick", "bench.max_seconds=null", "bench.warmup_max_seconds=null"], tmp_path
    )
    metrics = json.loads((Path(run_dir) / "result.json").read_text())["metrics"]
    assert metrics["n_iterations"] == 3 and metrics["budget_cut"] is False and metrics["budget_cut_reason"] is None
