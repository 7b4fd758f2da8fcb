"""Quality columns of a summary, and how much quality a configuration gives up against the baseline.

Quality does not depend on the batch size, so a precision's quality is its first measured value
within a group, whichever batch measured it; every batch of that precision inherits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class QualityMetric:
    column: str
    label: str
    higher_is_better: bool
    # How the drop is expressed: "points" (fractions, as percentage points), "percent" (relative
    # increase) or "absolute" (difference in the metric's own unit).
    drop_kind: str

    @property
    def drop_label(self) -> str:
        unit = {"points": "percentage points", "percent": "% relative increase", "absolute": "absolute increase"}
        return f"{self.label} drop ({unit[self.drop_kind]})"


# Names the quality runs write (see quantbench/quality), most useful first: the first one present
# is the default for `recommend --max-quality-drop`.
KNOWN_METRICS = (
    QualityMetric("pubmedqa_acc", "PubMedQA accuracy", True, "points"),
    QualityMetric("kld_mean", "KL divergence vs reference (nats)", False, "absolute"),
    QualityMetric("ppl", "WikiText-2 perplexity", False, "percent"),
    QualityMetric("top1_agree", "top-1 agreement with reference", True, "points"),
)

# Other quality columns (e.g. from a plugin) are recognised by the end of their name. Columns that
# start like the known ones are their companions (intervals, counts, settings), not metrics.
_GENERIC_PATTERNS = (
    (re.compile(r"_(acc|accuracy)$"), True, "points"),
    (re.compile(r"_(agree|agreement)$"), True, "points"),
    (re.compile(r"_(ppl|perplexity)$"), False, "percent"),
)
_COMPANION_PREFIXES = ("pubmedqa_", "kld_", "ppl_", "top1_")


def quality_metrics(frame: pl.DataFrame) -> list[QualityMetric]:
    """The quality metrics that have at least one value in `frame`."""

    def present(column: str) -> bool:
        return (
            column in frame.columns and frame.schema[column].is_numeric() and frame[column].null_count() < frame.height
        )

    found = [metric for metric in KNOWN_METRICS if present(metric.column)]
    known = {metric.column for metric in found} | {metric.column for metric in KNOWN_METRICS}
    for column in frame.columns:
        if column in known or column.startswith(_COMPANION_PREFIXES) or not present(column):
            continue
        for pattern, higher_is_better, drop_kind in _GENERIC_PATTERNS:
            if pattern.search(column):
                found.append(QualityMetric(column, column, higher_is_better, drop_kind))
                break
    return found


def metric_by_column(frame: pl.DataFrame, column: str | None) -> QualityMetric | None:
    metrics = quality_metrics(frame)
    if column is None:
        return metrics[0] if metrics else None
    return next((metric for metric in metrics if metric.column == column), None)


def with_quality_drop(
    frame: pl.DataFrame, metric: QualityMetric, baseline: str, group_columns: list[str]
) -> pl.DataFrame:
    """Add `quality` (the metric, filled across batches) and `quality_drop` against the baseline.

    A positive drop is worse than the baseline, whichever way the metric points.
    """
    keys = [column for column in group_columns if column in frame.columns]
    values = against_baseline(frame, metric.column, baseline, keys, "quality", "_baseline_quality")
    scale = 100.0 if metric.drop_kind == "points" and _is_fraction(frame[metric.column]) else 1.0
    difference = pl.col("_baseline_quality") - pl.col("quality")
    if not metric.higher_is_better:
        difference = -difference
    if metric.drop_kind == "percent":
        drop = difference / pl.col("_baseline_quality") * 100.0
    else:
        drop = difference * scale
    values = values.with_columns(drop.alias("quality_drop")).drop("_baseline_quality")
    frame = frame.drop([column for column in ("quality", "quality_drop") if column in frame.columns])
    return frame.join(values, on=[*keys, "precision"], how="left", nulls_equal=True)


def against_baseline(
    frame: pl.DataFrame, column: str, baseline: str, keys: list[str], value: str, baseline_value: str
) -> pl.DataFrame:
    """One row per (keys, precision): its first measured `column` as `value`, and the baseline
    precision's of the same group as `baseline_value` (null where the group has no baseline)."""
    per_precision = frame.group_by([*keys, "precision"]).agg(pl.col(column).drop_nulls().first().alias(value))
    base = per_precision.filter(pl.col("precision") == baseline).drop("precision").rename({value: baseline_value})
    return (
        per_precision.join(base, on=keys, how="left", nulls_equal=True)
        if keys
        else per_precision.join(base, how="cross")
    )


def _is_fraction(series: pl.Series) -> bool:
    values = series.drop_nulls()
    return values.len() > 0 and float(values.max()) <= 1.0
