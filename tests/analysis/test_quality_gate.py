"""Quality gates (quantbench/analysis/gate.py), PubMedQA's paired accuracy interval, and
`quantbench recommend --quality-gate`, on synthetic tables and sweeps with known answers."""

from __future__ import annotations

import polars as pl
import pytest
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.analysis.gate import choose_gate, with_quality_gate
from quantbench.cli import main as cli
from quantbench.config.schema import AnalysisConfig
from quantbench.errors import QuantbenchError
from quantbench.quality.intervals import paired_difference_interval
from quantbench.report.build import build_document
from quantbench.report.markdown import render_markdown


def _table(pubmedqa: bool) -> pl.DataFrame:
    # Two models, each with its own baseline; every precision at batch 1 and 4.
    rows = []
    for model, ppl in (
        ("a", {"fp32": 10.0, "bf16": 10.05, "nf4": 10.4}),
        ("b", {"fp32": 20.0, "bf16": 20.0, "nf4": 20.3}),
    ):
        for precision, value in ppl.items():
            for batch in (1, 4):
                acc = {"fp32": 0.60, "bf16": 0.597, "nf4": 0.57}[precision] if pubmedqa and model == "a" else None
                rows.append({"model": model, "precision": precision, "batch": batch, "ppl": value, "pubmedqa_acc": acc})
    return pl.DataFrame(rows, schema_overrides={"pubmedqa_acc": pl.Float64})


def _verdicts(frame: pl.DataFrame) -> dict[tuple[str, str], bool | None]:
    verdicts = {}
    for row in frame.iter_rows(named=True):
        verdict = verdicts.setdefault((row["model"], row["precision"]), row["passes_quality_gate"])
        assert verdict == row["passes_quality_gate"]  # every batch of a precision shares it
    return verdicts


def test_gate_on_perplexity_has_the_known_answer():
    frame = _table(pubmedqa=False)
    gate = choose_gate(frame, 0.99)
    assert (gate.metric, gate.column) == ("ppl", "ppl")
    judged = with_quality_gate(frame, gate, "fp32", ["model"])
    # recovery = PPL_fp32 / PPL: a 10.05/10.0 = 0.995, b 1.0, a-nf4 0.9615, b-nf4 0.9852
    assert _verdicts(judged) == {("a", "fp32"): True, ("a", "bf16"): True, ("a", "nf4"): False,
                                 ("b", "fp32"): True, ("b", "bf16"): True, ("b", "nf4"): False}  # fmt: skip
    recovery = judged.filter((pl.col("model") == "a") & (pl.col("precision") == "nf4"))["quality_recovery"][0]
    assert recovery == pytest.approx(10.0 / 10.4)
    looser = with_quality_gate(frame, choose_gate(frame, 0.95), "fp32", ["model"])
    assert all(_verdicts(looser).values())


def test_gate_prefers_pubmedqa_where_measured_and_can_be_told_otherwise():
    frame = _table(pubmedqa=True)
    gate = choose_gate(frame, 0.99)
    assert gate.metric == "pubmedqa" and "PubMedQA" in gate.describe("fp32")
    verdicts = _verdicts(with_quality_gate(frame, gate, "fp32", ["model"]))
    # a: 0.597/0.60 = 0.995 passes, 0.57/0.60 = 0.95 fails; b measured no PubMedQA: no verdict
    assert verdicts[("a", "bf16")] is True and verdicts[("a", "nf4")] is False
    assert verdicts[("b", "bf16")] is None and verdicts[("b", "fp32")] is None
    by_ppl = _verdicts(with_quality_gate(frame, choose_gate(frame, 0.99, "ppl"), "fp32", ["model"]))
    assert by_ppl[("b", "bf16")] is True and by_ppl[("b", "nf4")] is False
    with pytest.raises(QuantbenchError, match="quality_gate_metric 'bleu'"):
        choose_gate(frame, 0.99, "bleu")
    with pytest.raises(QuantbenchError, match="quality_gate is 99"):
        choose_gate(frame, 99)


def test_paired_accuracy_interval_follows_the_discordant_questions():
    # No question answered differently: centred on 0, narrower than the unpaired Wilson widths.
    low, high = paired_difference_interval(0, 0, 80, 20, 0.95)
    assert low == pytest.approx(-high) and 0 < high < 0.05
    # 20 questions only the baseline gets right (McNemar p < 0.001): the interval excludes 0.
    low, high = paired_difference_interval(0, 20, 100, 80, 0.95)
    assert low < -0.10 < high < 0
    # More discordant pairs at the same difference: wider.
    wide_low, wide_high = paired_difference_interval(20, 40, 80, 60, 0.95)
    assert wide_high - wide_low > high - low


PRECISIONS = (
    SyntheticPrecision("fp32", 1.0, 0.50, 1.00, accuracy=0.60),
    SyntheticPrecision("bf16", 1.5, 0.25, 0.60, accuracy=0.59),  # recovers 98.3%
    SyntheticPrecision("int8", 1.2, 0.14, 0.45, accuracy=0.58),  # 96.7%
    SyntheticPrecision("nf4", 2.0, 0.09, 0.40, accuracy=0.50),  # 83.3%, and the fastest
)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    return write_sweep(
        tmp_path_factory.mktemp("gate-sweep"), SyntheticSweep(precisions=PRECISIONS, batches=(1,), iterations=8)
    )


def test_analysis_and_report_show_the_gate_beside_speed(sweep_dir, tmp_path):
    analysis = analyze(sweep_dir, AnalysisConfig(quality_gate=0.97), comparisons=True)
    verdicts = dict(analysis.table.select("precision", "passes_quality_gate").iter_rows())
    assert verdicts == {"fp32": True, "bf16": True, "int8": False, "nf4": False}
    markdown = render_markdown(build_document(analysis, [], tmp_path))
    performance = markdown.split("## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert "| tokens/s | QPS | quality gate |" in performance and "| nf4 |" in performance and "FAIL" in performance
    quality = markdown.split("## Quality\n", 1)[1].split("\n## ", 1)[0]
    assert "recovers ≥ 97.0% of `fp32`'s PubMedQA accuracy" in quality and "metric `pubmedqa`" in quality
    assert "| bf16 | 98.33% | pass |" in quality
    # The paired accuracy table: the interval of the difference beside McNemar's p.
    assert "| nf4 | 200 | 60.0% | 50.0% | -10.0 | -14.2 to -5.7 |" in quality


def test_recommend_with_a_quality_gate(sweep_dir, capsys):
    # Without the gate the fastest (nf4) wins; the sweep's gate (0.99 by default) leaves only fp32.
    assert cli.main(["recommend", str(sweep_dir)]) == 0
    assert "**nf4 @ batch 1**" in capsys.readouterr().out
    assert cli.main(["recommend", str(sweep_dir), "--quality-gate"]) == 0
    out = capsys.readouterr().out
    assert "**fp32 @ batch 1**" in out and "quality gate = 0.99" in out
    assert "- nf4 @ batch 1: quality gate: recovers 83.33% of the baseline's quality < 99.00%" in out
    assert cli.main(["recommend", str(sweep_dir), "--quality-gate", "0.96"]) == 0
    assert "**bf16 @ batch 1**" in capsys.readouterr().out
    assert cli.main(["recommend", str(sweep_dir), "--quality-gate", "1.5"]) == 2
    assert "quality_gate is 1.5" in capsys.readouterr().err
