"""`quantbench recommend`: Pareto frontier and the best configuration under limits, known answers."""

from __future__ import annotations

import pytest
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.cli import main as cli
from quantbench.report.recommend import Limits, pareto_frontier, recommend

# Latency at batch 1 is 112.5 ms / speed; peak memory is the value below + 0.01 GB.
PRECISIONS = (
    SyntheticPrecision("fp32", 1.0, 0.50, 1.00, accuracy=0.60),
    SyntheticPrecision("bf16", 1.5, 0.25, 0.60, accuracy=0.59),
    SyntheticPrecision("fp16", 0.9, 0.25, 0.70, accuracy=0.57),  # bf16 beats it on everything
    SyntheticPrecision("int8", 0.8, 0.14, 0.45, accuracy=0.58),
    SyntheticPrecision("nf4", 0.6, 0.09, 0.40, accuracy=0.50),
    SyntheticPrecision("gptq", 1.0, 0.09, 0.40, status="skipped", reason="requires gptqmodel"),
)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(
        tmp_path_factory.mktemp("sweep"), SyntheticSweep(precisions=PRECISIONS, batches=(1,), iterations=8)
    )


@pytest.fixture(scope="module")
def analysis(sweep_dir):
    return analyze(sweep_dir, comparisons=False)


def reasons(recommendation) -> dict[str, str]:
    return dict(recommendation.excluded)


def test_without_limits_the_fastest_wins(analysis):
    result = recommend(analysis, Limits())
    assert result.best["precision"] == "bf16"
    frontier = dict(result.candidates.select("precision", "on_frontier").iter_rows())
    assert frontier == {"fp32": True, "bf16": True, "fp16": False, "int8": True, "nf4": True}
    assert "requires gptqmodel" in reasons(result)["gptq @ batch 1"]


def test_memory_limit_picks_the_fastest_that_fits(analysis):
    result = recommend(analysis, Limits(max_memory_gb=0.5))
    assert result.best["precision"] == "int8"
    why = reasons(result)
    assert why["bf16 @ batch 1"] == "peak_memory_gb 0.610 GB > limit 0.5 GB"
    assert why["fp32 @ batch 1"].startswith("peak_memory_gb 1.010 GB > limit")
    assert why["nf4 @ batch 1"].startswith("within the limits, but")
    assert set(why) == {"fp32 @ batch 1", "bf16 @ batch 1", "fp16 @ batch 1", "nf4 @ batch 1", "gptq @ batch 1"}


def test_quality_limit_in_accuracy_points(analysis):
    result = recommend(analysis, Limits(max_memory_gb=0.5, max_quality_drop=5))
    assert result.best["precision"] == "int8" and result.best["quality_drop"] == pytest.approx(2.0)
    assert "PubMedQA accuracy drop (percentage points) 10 > limit 5" in reasons(result)["nf4 @ batch 1"]
    assert recommend(analysis, Limits(max_memory_gb=0.5, max_quality_drop=1)).best is None


def test_latency_limit(analysis):
    assert recommend(analysis, Limits(max_p95_ms=130)).best["precision"] == "bf16"
    result = recommend(analysis, Limits(max_memory_gb=0.5, max_p95_ms=130))
    assert result.best is None
    assert "p95 latency" in reasons(result)["int8 @ batch 1"]


def test_other_objective_and_memory_column(analysis):
    result = recommend(analysis, Limits(max_memory_gb=0.2), objective="qps", memory_column="weight_memory_gb")
    assert result.best["precision"] == "int8"  # weights 0.14 GB fit; bf16's 0.25 GB do not


def test_pareto_frontier_on_a_plain_table():
    rows = [
        {"tokens_per_s": 10.0, "peak_memory_gb": 1.0, "quality_drop": 0.0},
        {"tokens_per_s": 5.0, "peak_memory_gb": 2.0, "quality_drop": 1.0},  # worse on all three
        {"tokens_per_s": 5.0, "peak_memory_gb": 0.5, "quality_drop": 3.0},
        {"tokens_per_s": 10.0, "peak_memory_gb": 1.0, "quality_drop": None},  # unmeasured quality
    ]
    assert pareto_frontier(rows, "tokens_per_s", "peak_memory_gb") == [True, False, True, False]


def test_recommend_command(sweep_dir, capsys):
    assert cli.main(["recommend", str(sweep_dir), "--max-memory-gb", "0.5", "--max-quality-drop", "5"]) == 0
    out = capsys.readouterr().out
    assert "**int8 @ batch 1**" in out
    assert "## Pareto frontier" in out and "- bf16 @ batch 1: peak_memory_gb 0.610 GB > limit 0.5 GB" in out


def test_recommend_command_when_nothing_fits(sweep_dir, capsys):
    assert cli.main(["recommend", str(sweep_dir), "--max-memory-gb", "0.01"]) == 1
    assert "No configuration meets every limit" in capsys.readouterr().out


def test_recommend_command_with_an_unknown_quality_metric(sweep_dir, capsys):
    assert cli.main(["recommend", str(sweep_dir), "--quality-metric", "bleu"]) == 2
    error = capsys.readouterr().err
    assert "quality metric 'bleu'" in error and "pubmedqa_acc" in error
