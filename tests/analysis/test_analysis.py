"""Statistics, cost and roofline, on samples and sweeps with known answers (hardware facts:
tests/measure/test_hardware_facts.py)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats as scipy_stats
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.analysis.cost import (
    cost_per_1k_tokens,
    cost_per_query,
    queries_per_dollar,
    savings_pct,
    with_cost_columns,
)
from quantbench.analysis.quality import quality_metrics, with_quality_drop
from quantbench.analysis.roofline import bytes_per_decode_step, ceiling_tokens_per_s, roofline_row
from quantbench.analysis.stats import (
    compare_across_batches,
    compare_throughput,
    direction,
    make_sample,
    mcnemar_exact,
    welch_contrast,
)
from quantbench.config.schema import AnalysisConfig
from quantbench.measure.kv_cache import KvShape, kv_shape_from_config

SETTINGS = AnalysisConfig(bootstrap_resamples=1000)


def latencies_s(rng: np.random.Generator, mean_s: float, n: int, spread: float = 0.05) -> np.ndarray:
    return mean_s * rng.lognormal(0.0, spread, n)


def sample(seconds: np.ndarray, work: float = 8.0):
    return make_sample(np.full(len(seconds), work), seconds)


# --- statistics --------------------------------------------------------------------------------


def test_known_ratio_is_inside_the_interval_and_significant():
    rng = np.random.default_rng(1)
    baseline = sample(latencies_s(rng, 0.100, 25))
    candidate = sample(latencies_s(rng, 0.100 / 1.5, 25))  # 1.5x the throughput
    test = compare_throughput(baseline, candidate, SETTINGS, "known")
    assert test.ci_low < 1.5 < test.ci_high
    assert test.ci_low > 1.0 and test.p_value < 1e-6
    assert direction(test, 0.05) == "faster"
    assert test.ratio == pytest.approx(baseline[1].sum() / candidate[1].sum())  # equal work per iteration


def test_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered = 0
    trials = 60
    for trial in range(trials):
        baseline = sample(latencies_s(rng, 0.1, 20, 0.1))
        candidate = sample(latencies_s(rng, 0.1 / 0.8, 20, 0.1))  # 0.8x; mean of lognormal scales alike
        test = compare_throughput(baseline, candidate, SETTINGS, f"coverage-{trial}")
        covered += test.ci_low <= 0.8 <= test.ci_high
    assert covered / trials >= 0.85  # nominal 95%; a broken interval covers far less


def test_identical_samples_give_p_near_one_and_an_interval_around_one():
    rng = np.random.default_rng(2)
    seconds = latencies_s(rng, 0.05, 20)
    test = compare_throughput(sample(seconds), sample(seconds.copy()), SETTINGS, "identical")
    assert test.ratio == pytest.approx(1.0)
    assert test.p_value > 0.99
    assert test.ci_low <= 1.0 <= test.ci_high
    assert direction(test, 0.05) == "no clear difference"


def test_constant_samples_do_not_break_the_bootstrap():
    constant = sample(np.full(5, 0.1))
    test = compare_throughput(constant, constant, SETTINGS)
    assert (test.ratio, test.ci_low, test.ci_high, test.p_value) == (1.0, 1.0, 1.0, 1.0)
    faster = compare_throughput(constant, sample(np.full(5, 0.05)), SETTINGS)
    assert faster.ratio == pytest.approx(2.0) and faster.p_value == 0.0


def test_a_single_iteration_has_no_interval():
    test = compare_throughput(sample(np.array([0.1])), sample(np.array([0.05])), SETTINGS)
    assert test.ratio == pytest.approx(2.0)
    assert math.isnan(test.ci_low) and math.isnan(test.p_value)


def test_a_non_positive_duration_is_an_error():
    with pytest.raises(ValueError, match="positive duration"):
        make_sample([8, 8], [0.1, 0.0])


def test_geometric_mean_across_batches_covers_the_known_value():
    rng = np.random.default_rng(3)
    pairs, tests = [], []
    for index, ratio in enumerate((1.2, 1.8)):
        baseline = sample(latencies_s(rng, 0.1, 25))
        candidate = sample(latencies_s(rng, 0.1 / ratio, 25))
        pairs.append((baseline, candidate))
        tests.append(compare_throughput(baseline, candidate, SETTINGS, f"batch-{index}"))
    overall = compare_across_batches(pairs, SETTINGS, "overall")
    assert overall.ratio == pytest.approx(math.sqrt(tests[0].ratio * tests[1].ratio))
    assert overall.ci_low < math.sqrt(1.2 * 1.8) < overall.ci_high
    assert overall.p_value < 1e-6 and direction(overall, 0.05) == "faster"


def test_welch_contrast_of_one_pair_is_welchs_t_test():
    rng = np.random.default_rng(4)
    baseline, candidate = sample(latencies_s(rng, 0.1, 7)), sample(latencies_s(rng, 0.095, 9, 0.1))
    two_sided, faster = welch_contrast([(baseline, candidate)])
    log_rates = [np.log(s[0] / s[1]) for s in (candidate, baseline)]
    assert two_sided == pytest.approx(scipy_stats.ttest_ind(*log_rates, equal_var=False).pvalue)
    assert faster == pytest.approx(scipy_stats.ttest_ind(*log_rates, equal_var=False, alternative="greater").pvalue)


def test_faster_at_one_batch_and_slower_at_another_cancel_out():
    rng = np.random.default_rng(5)
    pairs = []
    for ratio in (2.0, 0.5):
        pairs.append((sample(latencies_s(rng, 0.1, 20)), sample(latencies_s(rng, 0.1 / ratio, 20))))
    overall = compare_across_batches(pairs, SETTINGS, "opposite")
    assert overall.ratio == pytest.approx(1.0, abs=0.05)
    assert overall.p_value > 0.05 and overall.ci_low < 1.0 < overall.ci_high
    assert direction(overall, 0.05) == "no clear difference"


def test_mcnemar_counts_discordant_questions():
    baseline = [True] * 10 + [False] * 10 + [True] * 5
    candidate = [True] * 10 + [False] * 10 + [False] * 5
    test = mcnemar_exact(baseline, candidate)
    assert (test.only_baseline_correct, test.only_candidate_correct) == (5, 0)
    assert test.p_value == pytest.approx(scipy_stats.binomtest(0, 5, 0.5).pvalue)
    assert mcnemar_exact(baseline, baseline).p_value == 1.0
    with pytest.raises(ValueError, match="same questions"):
        mcnemar_exact([True], [True, False])


# --- cost --------------------------------------------------------------------------------------


def test_cost_arithmetic():
    # $3.60/h is $0.001/s: 100 tokens/s -> $0.01 per 1000 tokens; 2 queries/s -> $0.0005 per query.
    assert cost_per_1k_tokens(3.6, 100.0) == pytest.approx(0.01)
    assert cost_per_query(3.6, 2.0) == pytest.approx(0.0005)
    assert queries_per_dollar(3.6, 2.0) == pytest.approx(2000.0)
    assert savings_pct(0.005, 0.01) == pytest.approx(50.0)
    assert savings_pct(0.02, 0.01) == pytest.approx(-100.0)


def test_cost_columns_compare_with_the_baseline_at_the_same_batch():
    frame = pl.DataFrame(
        {
            "model": ["m"] * 4,
            "precision": ["fp32", "nf4", "fp32", "nf4"],
            "batch": [1, 1, 8, 8],
            "tokens_per_s": [100.0, 200.0, 400.0, 200.0],
            "qps": [2.0, 4.0, 8.0, 4.0],
            "price_per_hour_usd": [3.6, 3.6, 3.6, None],
        }
    )
    out = with_cost_columns(frame, "fp32", ["model"])
    rows = {(row["precision"], row["batch"]): row for row in out.iter_rows(named=True)}
    assert rows[("fp32", 1)]["cost_per_1k_tokens_usd"] == pytest.approx(0.01)
    assert rows[("nf4", 1)]["savings_vs_baseline_pct"] == pytest.approx(50.0)
    assert rows[("fp32", 8)]["queries_per_dollar"] == pytest.approx(8000.0)
    assert rows[("nf4", 8)]["cost_per_1k_tokens_usd"] is None  # no price, no made-up cost
    assert rows[("nf4", 8)]["savings_vs_baseline_pct"] is None


# --- roofline ----------------------------------------------------------------------------------


def test_roofline_arithmetic():
    shape = kv_shape_from_config(
        {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 128}
    )
    assert shape == KvShape(layers=2, kv_heads=2, head_dim=32)
    assert shape.bytes_per_token(2) == 2 * 2 * 2 * 32 * 2
    step = bytes_per_decode_step(1e9, 1000.0, batch=4, context_tokens=250.0)
    assert step == 1e9 + 4 * 1000 * 250
    # 1 GB of weights at 100 GB/s: at most 100 decode steps per second, each giving `batch` tokens.
    assert ceiling_tokens_per_s(100.0, 1e9, batch=1) == pytest.approx(100.0)
    assert ceiling_tokens_per_s(100.0, 1e9, batch=8) == pytest.approx(800.0)


def test_roofline_row_uses_decode_rate_and_the_recorded_kv_bytes():
    kv_bytes = 2 * 1 * 1 * 8 * 4
    row = {
        "memory_bandwidth_gb_s": 10.0,
        "weight_memory_gb": 1.0,
        "batch": 2,
        "tpot_p50_ms": 1000.0,
        "input_tokens_per_iteration": 20,
        "max_new_tokens": 10,
        "kv_cache_bytes_per_token": kv_bytes,
    }
    out = roofline_row(row)
    step = 1e9 + 2 * kv_bytes * (10 + 5)
    assert out["bytes_per_decode_step_mb"] == pytest.approx(step / 1e6)
    assert out["ceiling_tokens_per_s"] == pytest.approx(2 * 10e9 / step)
    assert out["decode_tokens_per_s"] == pytest.approx(2.0)
    assert out["roofline_pct"] == pytest.approx(2.0 / (2 * 10e9 / step) * 100)
    assert out["roofline_note"] == ""
    assert roofline_row({**row, "memory_bandwidth_gb_s": None})["roofline_note"] == "no memory bandwidth"
    # A job that recorded no KV size (an older quantbench): the weights alone, and the row says so.
    unrecorded = roofline_row({**row, "kv_cache_bytes_per_token": None})
    assert "KV cache not counted" in unrecorded["roofline_note"]
    assert unrecorded["bytes_per_decode_step_mb"] == pytest.approx(1e3)


# --- a whole synthetic sweep -----------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_analysis(tmp_path_factory):
    return analyze(write_sweep(tmp_path_factory.mktemp("sweep")), SETTINGS)


def test_ratios_agree_with_the_summary_and_cover_the_known_speed(synthetic_analysis):
    summary = synthetic_analysis.sweep.summary
    speed = {precision.name: precision.speed for precision in SyntheticSweep().precisions}
    comparisons = synthetic_analysis.throughput
    per_batch = comparisons.filter(pl.col("batch").is_not_null())
    assert per_batch.height == 2 * 3 * 2  # metrics x precisions x batches
    for row in per_batch.iter_rows(named=True):
        at_batch = summary.filter(pl.col("batch") == row["batch"])
        value = dict(at_batch.select("precision", row["metric"]).iter_rows())
        assert row["ratio"] == pytest.approx(value[row["precision"]] / value["fp32"], rel=1e-9)
        assert row["ci_low"] < speed[row["precision"]] < row["ci_high"], row
        assert row["direction"] == ("faster" if speed[row["precision"]] > 1 else "slower")
    overall = comparisons.filter(pl.col("batch").is_null())
    assert sorted(overall["precision"].to_list()) == sorted(["bf16", "int8", "nf4"] * 2)


def test_paired_accuracy_on_the_synthetic_sweep(synthetic_analysis):
    rows = {row["precision"]: row for row in synthetic_analysis.accuracy.iter_rows(named=True)}
    # nf4 is right on 100 of 200 questions, fp32 on 120, nested: 20 discordant, all for fp32.
    assert (rows["nf4"]["only_baseline_correct"], rows["nf4"]["only_candidate_correct"]) == (20, 0)
    assert rows["nf4"]["p_value"] == pytest.approx(scipy_stats.binomtest(0, 20, 0.5).pvalue)
    assert rows["nf4"]["significant"] and not rows["bf16"]["significant"]
    assert rows["nf4"]["accuracy_difference_points"] == pytest.approx(-10.0)


def test_cost_and_roofline_columns_on_the_synthetic_sweep(synthetic_analysis):
    table = synthetic_analysis.table
    for row in table.iter_rows(named=True):
        assert row["cost_per_1k_tokens_usd"] == pytest.approx(cost_per_1k_tokens(2.0, row["tokens_per_s"]))
        assert row["roofline_pct"] > 0
    assert table.filter(pl.col("precision") == "fp32")["savings_vs_baseline_pct"].to_list() == [0.0, 0.0]


def test_quality_metrics_skip_companion_columns():
    frame = pl.DataFrame(
        {
            "precision": ["fp32", "nf4"],
            "batch": [1, 1],
            "kld_mean": [0.0, 0.1],
            "kld_mean_ci_low": [0.0, 0.05],
            "kld_p90": [0.0, 0.2],
            "kld_n_tokens": [10, 10],
            "ppl": [10.0, 12.0],
            "ppl_n_windows": [2, 2],
            "top1_agree": [100.0, 90.0],
            "mmlu_acc": [0.5, 0.4],
        }
    )
    assert [metric.column for metric in quality_metrics(frame)] == ["kld_mean", "ppl", "top1_agree", "mmlu_acc"]
    by_column = {metric.column: metric for metric in quality_metrics(frame)}
    drops = {
        column: dict(
            with_quality_drop(frame, by_column[column], "fp32", []).select("precision", "quality_drop").iter_rows()
        )
        for column in by_column
    }
    assert drops["ppl"]["nf4"] == pytest.approx(20.0)  # % increase
    assert drops["kld_mean"]["nf4"] == pytest.approx(0.1)  # nats
    assert drops["top1_agree"]["nf4"] == pytest.approx(10.0)  # already in percent
    assert drops["mmlu_acc"]["nf4"] == pytest.approx(10.0)  # fraction -> points


def test_missing_baseline_falls_back_with_a_note(tmp_path):
    spec = SyntheticSweep(precisions=tuple(p for p in SyntheticSweep().precisions if p.name != "fp32"), iterations=5)
    analysis = analyze(write_sweep(tmp_path, spec), SETTINGS)
    assert analysis.settings.baseline == "bf16"
    assert any("baseline precision 'fp32'" in note for note in analysis.notes)
    assert set(analysis.throughput["baseline"].to_list()) == {"bf16"}


def test_skipped_jobs_are_left_out_of_the_statistics(tmp_path):
    precisions = (
        *SyntheticSweep().precisions[:2],
        SyntheticPrecision("nf4", 1, 0, 0, status="skipped", reason="no GPU"),
    )
    analysis = analyze(write_sweep(tmp_path, SyntheticSweep(precisions=precisions, iterations=5)), SETTINGS)
    assert "nf4" not in analysis.throughput["precision"].to_list()
    assert analysis.table.height == 4


def test_labels_of_points_on_top_of_each_other_are_stacked_not_overprinted():
    from quantbench.analysis.plots import _stacked_label_offsets

    # bf16 and fp16: the same weight size and nearly the same perplexity; fp32 far away.
    memory, perplexity = [0.269, 0.269, 0.538, None], [27.61, 27.63, 27.61, 30.0]
    assert _stacked_label_offsets(memory, perplexity) == [(5, 4), (5, 14), (5, 4), (5, 4)]
    assert _stacked_label_offsets([1.0, 1.0, 1.0], [2.0, 2.0, 2.0]) == [(5, 4), (5, 14), (5, 24)]
