"""Between-run variance: the repeat axis, the interval over repeats with the repeat as the unit, and
the collector folding repeats (a real sweep with bench.repeats: tests/e2e/test_repeats_sweep.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hydra.errors import HydraException
from scipy import stats

from hydra_plugins.quantbench_sweeper.quantbench_sweeper import repeat_axis
from quantbench.analysis.stats import compare_repeat_rates
from quantbench.collect.repeats import configuration_rows, repeat_interval
from quantbench.config.schema import AnalysisConfig


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
    assert (one.ci_low, one.ci_high) == pytest.approx(
        tuple(math.exp(np.log([10.0, 11.0, 12.5]).mean() + s * t) for s in (-1, 1))
    )
    assert math.isnan(repeat_interval([10.0]).ci_low)


def test_the_collector_folds_repeats_and_says_when_one_failed():
    def row(repeat, status, rate, job):
        return {
            "configuration_hash": "c",
            "precision": "fp32",
            "batch": 1,
            "repeat": repeat,
            "status": status,
            "reason": None if status == "ok" else "out of memory",
            "tokens_per_s": rate,
            "job_dir": job,
        }

    rows = configuration_rows(
        [
            row(0, "ok", 10.0, "0"),
            row(1, "failed", None, "1"),
            row(2, "ok", 14.0, "2"),
            {**row(0, "ok", 5.0, "3"), "precision": "bf16"},
        ]
    )
    assert len(rows) == 2
    fp32, bf16 = rows
    assert fp32["n_repeats"] == 2 and fp32["repeats_failed"] == 1 and fp32["tokens_per_s"] == 12.0
    assert fp32["reason"].startswith("1 of 3 repeats not ok (first: out of memory)")
    assert json.loads(fp32["job_dirs"]) == ["0", "2"]
    assert (
        bf16["n_repeats"] == 1 and bf16["tokens_per_s"] == 5.0 and bf16["ci_kind"] == "one run: no between-run interval"
    )
