"""Quality gates: does a configuration keep at least a given fraction of the baseline's quality?

MLPerf Inference accepts a quantized or otherwise optimised submission when its accuracy reaches
99 % (or 99.9 %) of the reference implementation's; llm-compressor's recovery figures use 95 %. The
same rule here: `analysis.quality_gate` (default 0.99) is the fraction, the baseline precision
(`analysis.baseline`) the reference, and the recovery of a configuration is

- PubMedQA: accuracy / baseline accuracy (where PubMedQA was measured), else
- perplexity, inverted so that higher is better: PPL_baseline / PPL.

`analysis.quality_gate_metric` (auto | pubmedqa | ppl) picks the metric; auto is PubMedQA where the
sweep measured it, else perplexity. Quality does not depend on the batch size, so every batch of a
precision shares its recovery. A configuration without the metric (or without a baseline to
compare with) has no verdict: `passes_quality_gate` is null there, never silently true.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from quantbench.analysis.quality import against_baseline
from quantbench.errors import QuantbenchError

GATE_METRICS = ("auto", "pubmedqa", "ppl")
# metric name -> (summary column, higher is better, label)
_METRIC_COLUMNS = {
    "pubmedqa": ("pubmedqa_acc", True, "PubMedQA accuracy"),
    "ppl": ("ppl", False, "perplexity (inverted: PPL_baseline / PPL)"),
}


@dataclass(frozen=True)
class QualityGate:
    fraction: float  # e.g. 0.99
    metric: str | None  # pubmedqa or ppl; None when the sweep has neither
    column: str | None  # the summary column it reads
    label: str  # what the report says was gated

    def describe(self, baseline: str) -> str:
        if self.metric is None:
            return (
                f"quality gate {self.fraction:g}: no PubMedQA accuracy or perplexity in this sweep, "
                "so no configuration is judged"
            )
        return f"quality gate: recovers ≥ {self.fraction:.1%} of `{baseline}`'s {self.label}"


def _has_values(frame: pl.DataFrame, column: str) -> bool:
    return column in frame.columns and frame.schema[column].is_numeric() and frame[column].null_count() < frame.height


def choose_gate(frame: pl.DataFrame, fraction: float, metric: str = "auto") -> QualityGate:
    if metric not in GATE_METRICS:
        raise QuantbenchError(
            f"unknown analysis.quality_gate_metric '{metric}'; choose one of: {', '.join(GATE_METRICS)}"
        )
    if not 0 < fraction <= 1:
        raise QuantbenchError(
            f"analysis.quality_gate is {fraction}; expected a fraction in (0, 1], e.g. 0.99 (MLPerf) or 0.95"
        )
    candidates = ["pubmedqa", "ppl"] if metric == "auto" else [metric]
    for name in candidates:
        column, _, label = _METRIC_COLUMNS[name]
        if _has_values(frame, column):
            return QualityGate(fraction, name, column, label)
    return QualityGate(fraction, None, None, "")


def with_quality_gate(frame: pl.DataFrame, gate: QualityGate, baseline: str, group_columns: list[str]) -> pl.DataFrame:
    """Add `quality_recovery` (fraction of the baseline's quality kept) and `passes_quality_gate`."""
    frame = frame.drop([column for column in ("quality_recovery", "passes_quality_gate") if column in frame.columns])
    if gate.column is None or frame.height == 0:
        return frame.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("quality_recovery"),
            pl.lit(None, dtype=pl.Boolean).alias("passes_quality_gate"),
        )
    keys = [column for column in group_columns if column in frame.columns]
    values = against_baseline(frame, gate.column, baseline, keys, "_value", "_baseline_value")
    _, higher_is_better, _ = _METRIC_COLUMNS[gate.metric]
    recovery = (
        pl.col("_value") / pl.col("_baseline_value")
        if higher_is_better
        else pl.col("_baseline_value") / pl.col("_value")
    )
    values = values.with_columns(recovery.alias("quality_recovery")).select([*keys, "precision", "quality_recovery"])
    frame = frame.join(values, on=[*keys, "precision"], how="left", nulls_equal=True)
    # The baseline recovers exactly all of itself; a tiny tolerance keeps float noise from failing a tie.
    return frame.with_columns((pl.col("quality_recovery") >= gate.fraction - 1e-12).alias("passes_quality_gate"))
