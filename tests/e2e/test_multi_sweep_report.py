"""Two real sweeps with different hardware names make one report."""

from __future__ import annotations

import polars as pl
import pytest
from support.report_text import ratio_rows, section

from quantbench.cli import main as cli
from quantbench.collect.sweeps import SUMMARY_PARQUET


# ~25 s on 2 cores; tests/report/test_multi_sweep.py reports synthetic sweeps of two machines by default.
@pytest.mark.slow
def test_two_real_sweeps_with_different_hardware_names_make_one_report(tmp_path, run_quantbench, capsys):
    sweeps = [
        run_quantbench(
            [
                "-m",
                "model=tiny-llama",
                "bench=quick",
                "precision=fp32",
                "batch=1,2",
                "hardware=cpu",
                f"hardware.name={name}",
                "analysis.report_at_end=false",
            ],
            tmp_path / name,
        )
        for name in ("machine-a", "machine-b")
    ]
    capsys.readouterr()
    assert cli.main(["report", *map(str, sweeps), "--resamples", "200", "--output", str(tmp_path / "both")]) == 0
    markdown = (tmp_path / "both" / "report.md").read_text()
    hardware = section(markdown, "Hardware: tokens/s vs machine-a")
    assert "| Batch | Precision | machine-a tokens/s | machine-b tokens/s |" in hardware
    assert "| Precision | Batch | Hardware | Direction | × vs machine-a | 95% CI | p | n | note |" in hardware
    rows = ratio_rows(hardware)
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("fp32", "1", "machine-b"),
        ("fp32", "2", "machine-b"),
        ("fp32", "all (geo. mean)", "machine-b"),
    ]
    summary = {name: pl.read_parquet(sweep / SUMMARY_PARQUET) for name, sweep in zip(("a", "b"), sweeps)}
    for row in rows[:2]:
        batch = int(row[1])
        rate = {name: frame.filter(pl.col("batch") == batch)["tokens_per_s"].item() for name, frame in summary.items()}
        assert row[4] == f"{rate['b'] / rate['a']:.3f}×"
