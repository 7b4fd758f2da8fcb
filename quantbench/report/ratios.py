"""The report's ratio tables: each configuration against a baseline along one axis (precisions
against the baseline precision, machines against the baseline machine), per batch size and as the
geometric mean over batch sizes, with the interval, p-value and samples of each ratio."""

from __future__ import annotations

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_interval, fmt_p, fmt_ratio
from quantbench.report.document import Table
from quantbench.report.precisions import precision_rank


def statistics_table(analysis: Analysis, metric: str) -> Table | None:
    """The ratios of `metric` (tokens_per_s, qps, tokens_per_kwh) against the baseline precision."""
    comparisons = analysis.throughput
    if comparisons.height == 0 or "metric" not in comparisons.columns:
        return None
    return ratio_table(
        analysis,
        comparisons.filter(pl.col("metric") == metric),
        analysis.varying_group_columns(),
        ("precision", "Precision"),
        analysis.settings.baseline,
    )


def ratio_table(
    analysis: Analysis, frame: pl.DataFrame, varying: list[str], axis: tuple[str, str], baseline: str
) -> Table | None:
    """Ratios against `baseline` along `axis` (column, header): one row per batch and value, and
    the geometric means over batch sizes."""
    if frame.height == 0:
        return None
    column, header = axis
    order = {machine: index for index, machine in enumerate(analysis.machines)}
    frame = frame.with_columns(
        precision_rank(analysis).alias("_rank"),
        pl.col(column).replace_strict(order, default=len(order)).alias("_order")
        if column != "precision"
        else pl.lit(0).alias("_order"),
    )
    keys = ["_rank" if name == "precision" else name for name in varying]  # precisions in display order
    frame = frame.sort([*keys, "batch", "_rank", "_order"], nulls_last=True)
    level = round(analysis.settings.confidence * 100)
    headers = (
        *(name.capitalize() for name in varying),
        "Batch",
        header,
        "Direction",
        f"× vs {baseline}",
        f"{level}% CI",
        "p",
        "n",
        "note",
    )
    rows = tuple(
        (
            *(str(row[name]) for name in varying),
            "all (geo. mean)" if row["batch"] is None else str(row["batch"]),
            row[column],
            row["direction"],
            fmt_ratio(row["ratio"]),
            fmt_interval(row["ci_low"], row["ci_high"]),
            fmt_p(row["p_value"]),
            "–" if row["n_candidate"] is None else f"{row['n_candidate']} vs {row['n_baseline']}",
            row["note"] or "",
        )
        for row in frame.iter_rows(named=True)
    )
    numeric = (*(False for _ in varying), True, False, False, True, True, True, True, False)
    return Table(headers, rows, numeric)
