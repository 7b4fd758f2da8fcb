"""A real sweep whose result was written by an older quantbench, resumed by this one."""

from __future__ import annotations

import sys

import polars as pl
from support.old_results import stored_by_an_older_version

from quantbench import jobdir
from quantbench.jobdir import read_result


def test_resuming_a_sweep_of_an_older_version_reuses_its_results(tmp_path, run_quantbench, monkeypatch):
    from quantbench.cli import resume

    sweep = run_quantbench(
        ["-m", "model=tiny-llama", "bench=quick", "precision=fp32", "analysis.report_at_end=false"], tmp_path
    )
    job_dir = sweep / "0"
    stored_by_an_older_version(job_dir, read_result(job_dir).config)
    old_finish = read_result(job_dir).finished_at
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main_from_cli sets it
    assert resume.main([str(sweep)]) == 0
    assert read_result(job_dir).finished_at == old_finish  # reused, not measured again
    assert pl.read_parquet(sweep / "summary.parquet")["ttft_p50_ms"].to_list() == [3.0]  # upgraded on read
    assert resume.main([str(sweep), "bench.max_seconds=300"]) == 0  # a new key typed by hand: measured again
    assert read_result(job_dir).finished_at != old_finish
    assert len(list(job_dir.glob(f"result{jobdir.SUPERSEDED_MARK}*.json"))) == 1
