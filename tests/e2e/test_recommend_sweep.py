"""`quantbench recommend` on a real sweep respects the memory limit."""

from __future__ import annotations

import polars as pl
import pytest

from quantbench.analysis.analyze import analyze
from quantbench.cli import main as cli
from quantbench.report.recommend import Limits, recommend


# ~13 s on 2 cores; tests/report/test_recommend.py judges synthetic sweeps by default.
@pytest.mark.slow
def test_recommend_on_a_real_sweep_respects_the_memory_limit(tmp_path, run_quantbench, capsys):
    sweep = run_quantbench(["-m", "model=tiny-llama", "bench=quick", "precision=fp32,bf16", "batch=1"], tmp_path)
    capsys.readouterr()
    summary = pl.read_parquet(sweep / "summary.parquet")
    limit = float(summary["peak_memory_gb"].min()) + 1e-6  # exactly one configuration (or a tie) fits
    assert cli.main(["recommend", str(sweep), "--max-memory-gb", str(limit)]) == 0
    result = recommend(analyze(sweep, comparisons=False), Limits(max_memory_gb=limit))
    assert result.best["peak_memory_gb"] <= limit
    assert f"**{result.best['configuration']}**" in capsys.readouterr().out
