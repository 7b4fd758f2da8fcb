"""bench.repeats in a real sweep: every configuration round-robin, one summary row per configuration
with n_repeats, jobs.parquet one per job, and a resume that reuses every repeat."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from support.app import run_app

# Two configurations, three repeats, the least work a job can do.
TINY = [
    "-m",
    "model=tiny-llama",
    "bench=quick",
    "precision=fp32,bf16",
    "bench.repeats=3",
    "bench.warmup_iterations=0",
    "bench.min_iterations=2",
    "bench.max_iterations=2",
    "bench.max_new_tokens=2",
    "analysis.report_at_end=false",
]


@pytest.fixture(scope="module")
def repeated_sweep(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        sweep, code = run_app(TINY, tmp_path_factory.mktemp("repeats"), monkeypatch)
    assert code == 0
    return sweep


def test_repeats_run_round_robin_in_launch_order(repeated_sweep):
    jobs = pl.read_parquet(repeated_sweep / "jobs.parquet")
    assert jobs.height == 6 and jobs["status"].to_list() == ["ok"] * 6
    numbers = [int(path.rsplit("/", 1)[1]) for path in jobs["job_dir"].to_list()]
    assert numbers == list(range(6))  # job directories keep the launch order
    launched = list(zip(jobs["repeat"].to_list(), jobs["precision"].to_list()))
    # All configurations once, then all again: drift hits every configuration alike.
    assert launched == [(0, "fp32"), (0, "bf16"), (1, "fp32"), (1, "bf16"), (2, "fp32"), (2, "bf16")]
    # Each repeat is its own job for resume: its own config hash, one configuration hash per precision.
    assert jobs["config_hash"].n_unique() == 6 and jobs["configuration_hash"].n_unique() == 2


def test_the_summary_has_one_row_per_configuration_with_n_repeats(repeated_sweep):
    summary = pl.read_parquet(repeated_sweep / "summary.parquet")
    jobs = pl.read_parquet(repeated_sweep / "jobs.parquet")
    assert summary["precision"].to_list() == ["fp32", "bf16"]
    assert summary["n_repeats"].to_list() == [3, 3]
    for row in summary.iter_rows(named=True):
        rates = jobs.filter(pl.col("precision") == row["precision"])["tokens_per_s"].to_list()
        assert row["tokens_per_s"] == pytest.approx(np.mean(rates))
        assert row["tokens_per_s_ci_low"] <= min(rates) or row["tokens_per_s_ci_low"] < row["tokens_per_s_ci_high"]
        assert row["ci_kind"] == "t-interval over repeats"
        assert len(json.loads(row["job_dirs"])) == 3


@pytest.mark.slow  # composes and checks six jobs again (~10 s on a quiet machine)
def test_resume_reuses_every_repeat_as_its_own_job(repeated_sweep, monkeypatch):
    from quantbench.cli.resume import replay_arguments

    before = pl.read_parquet(repeated_sweep / "jobs.parquet")["finished_at"].to_list()
    arguments = replay_arguments(repeated_sweep, [])
    assert "bench.repeats=3" in arguments
    monkeypatch.setattr("sys.argv", ["quantbench", *arguments])
    from hydra.core.global_hydra import GlobalHydra

    from quantbench.__main__ import main

    GlobalHydra.instance().clear()
    try:
        main()
    finally:
        GlobalHydra.instance().clear()
    after = pl.read_parquet(repeated_sweep / "jobs.parquet")
    assert after["finished_at"].to_list() == before  # every repeat's ok result reused, none re-measured
    assert after.height == 6
