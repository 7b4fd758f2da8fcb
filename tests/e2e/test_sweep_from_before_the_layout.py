"""A sweep written before the package moved into rooms (tests/fixtures/sweep-made-before-the-layout,
made by commit 1d6fff4) still collects to the numbers its jobs wrote, reports, and resumes with every
job reused: the move changed where modules live, not what a job directory holds."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from quantbench.cli import resume
from quantbench.cli.collect import main as collect_main
from quantbench.cli.report import main as report_main
from quantbench.jobdir import RESULT_FILE, read_result

OLD_SWEEP = Path(__file__).parents[1] / "fixtures" / "sweep-made-before-the-layout"


def test_a_sweep_of_the_previous_layout_collects_reports_and_resumes(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    shutil.copytree(OLD_SWEEP, sweep)
    jobs = sorted(path for path in sweep.iterdir() if (path / RESULT_FILE).is_file())
    _move_data_dir_to_this_machine(jobs, os.environ["QUANTBENCH_DATA"])
    written = {job.name: json.loads((job / RESULT_FILE).read_text()) for job in jobs}
    assert len(written) == 4

    assert collect_main([str(sweep)]) == 0
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary["status"].to_list() == ["ok", "ok"]
    assert summary["n_repeats"].to_list() == [2, 2]
    for row in summary.iter_rows(named=True):  # each configuration: the mean of what its two jobs wrote
        rates = [
            r["metrics"]["tokens_per_s"]
            for r in written.values()
            if r["config"]["precision"]["name"] == row["precision"]
        ]
        assert len(rates) == 2
        assert row["tokens_per_s"] == pytest.approx(sum(rates) / 2, rel=1e-12)

    assert report_main([str(sweep)]) == 0
    assert "fp32" in (sweep / "report.md").read_text()

    finished = {job.name: read_result(job).finished_at for job in jobs}
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the Hydra app reads and sets it
    assert resume.main([str(sweep), "bench.isolation=none", "analysis.report_at_end=false"]) == 0
    assert {job.name: read_result(job).finished_at for job in jobs} == finished  # every job reused


def _move_data_dir_to_this_machine(jobs: list[Path], data_dir: str) -> None:
    """The fixture's jobs read their data at the absolute path of the machine that made them; its
    result.json files say where, and the data files are part of what a job measured. Resuming on this
    machine, whose copy of the same files lives elsewhere (`.ci/run` puts ../shared beside its clone),
    is the case of a user who moved the data with the sweep, so each stored path follows it."""
    for job in jobs:
        result_file = job / RESULT_FILE
        text = result_file.read_text()
        made_with = json.loads(text)["config"]["quality"]["data_dir"]
        result_file.write_text(text.replace(json.dumps(made_with)[1:-1], json.dumps(data_dir)[1:-1]))
