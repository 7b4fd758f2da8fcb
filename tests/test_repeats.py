"""Between-run variance: bench.repeats runs every configuration round-robin; the summary has one row
per configuration with n_repeats, jobs.parquet one per job; the statistics take the repeat as the unit."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from conftest import run_app
from hydra.errors import HydraException
from scipy import stats

from hydra_plugins.quantbench_sweeper.quantbench_sweeper import repeat_axis
from quantbench.analysis.stats import compare_repeat_rates, repeat_interval
from quantbench.repeats import configuration_rows
from quantbench.schema import AnalysisConfig

# Two configurations, three repeats, the least work a job can do.
TINY = [
    "-m", "model=tiny-llama", "bench=quick", "precision=fp32,bf16", "bench.repeats=3", "bench.warmup_iterations=0",
    "bench.min_iterations=2", "bench.max_iterations=2", "bench.max_new_tokens=2", "analysis.report_at_end=false",
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
    from quantbench.resume import replay_arguments

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


def test_the_repeat_axis_is_added_only_for_several_repeats():
    assert repeat_axis(1, ["precision=fp32,bf16"]) == []
    assert repeat_axis(3, ["precision=fp32,bf16"]) == ["bench.repeat=range(0,3)"]
    assert repeat_axis(3, ["bench.repeat=2"]) == []  # one repeat re-run by hand
    with pytest.raises(HydraException, match="bench.repeats must be a whole number >= 1"):
        repeat_axis(0, [])


def test_the_interval_over_repeats_matches_a_hand_computation():
    baseline, candidate = [10.0, 11.0, 12.5], [19.0, 22.0, 21.0]
    test = compare_repeat_rates([(baseline, candidate)], AnalysisConfig())
    log_b, log_c = np.log(baseline), np.log(candidate)
    difference = log_c.mean() - log_b.mean()
    se2_b, se2_c = log_b.var(ddof=1) / 3, log_c.var(ddof=1) / 3
    df = (se2_b + se2_c) ** 2 / (se2_b**2 / 2 + se2_c**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(se2_b + se2_c)
    assert test.ratio == pytest.approx(math.exp(difference))
    assert (test.ci_low, test.ci_high) == pytest.approx((math.exp(difference - half), math.exp(difference + half)))
    assert test.p_value == pytest.approx(stats.ttest_ind(log_c, log_b, equal_var=False).pvalue)
    assert (test.n_baseline, test.n_candidate) == (3, 3)
    one = repeat_interval([10.0, 11.0, 12.5])
    t = stats.t.ppf(0.975, 2) * np.log([10.0, 11.0, 12.5]).std(ddof=1) / math.sqrt(3)
    assert one.mean == pytest.approx(11.1666667)
    assert (one.ci_low, one.ci_high) == pytest.approx(tuple(math.exp(np.log([10.0, 11.0, 12.5]).mean() + s * t) for s in (-1, 1)))
    assert math.isnan(repeat_interval([10.0]).ci_low)


def test_the_collector_folds_repeats_and_says_when_one_failed():
    def row(repeat, status, rate, job):
        return {"configuration_hash": "c", "precision": "fp32", "batch": 1, "repeat": repeat, "status": status,
                "reason": None if status == "ok" else "out of memory", "tokens_per_s": rate, "job_dir": job}

    rows = configuration_rows([row(0, "ok", 10.0, "0"), row(1, "failed", None, "1"), row(2, "ok", 14.0, "2"),
                               {**row(0, "ok", 5.0, "3"), "precision": "bf16"}])
    assert len(rows) == 2
    fp32, bf16 = rows
    assert fp32["n_repeats"] == 2 and fp32["repeats_failed"] == 1 and fp32["tokens_per_s"] == 12.0
    assert fp32["reason"].startswith("1 of 3 repeats not ok (first: out of memory)")
    assert json.loads(fp32["job_dirs"]) == ["0", "2"]
    assert bf16["n_repeats"] == 1 and bf16["tokens_per_s"] == 5.0 and bf16["ci_kind"] == "one run: no between-run interval"
