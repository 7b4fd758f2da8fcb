"""The report's per-configuration tables: one row per configuration (varying groups, batch size,
precision), the columns each offline section shows, and the tail percentiles that too few samples
resolve, flagged `p99*` with one footnote (quantbench.report.tails)."""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_fixed, fmt_number, fmt_pct, fmt_usd
from quantbench.analysis.sweep import column_or_none
from quantbench.report.document import Table
from quantbench.report.precisions import precision_rank
from quantbench.report.tails import flag_header, footnote, unresolved_columns

# (column, header, formatter) for the per-configuration tables.
Column = tuple[str, str, Callable[[Any], str]]

PERFORMANCE_COLUMNS: tuple[Column, ...] = (
    ("tokens_per_s", "tokens/s", fmt_number),
    ("qps", "QPS", fmt_number),
    ("passes_quality_gate", "quality gate", lambda v: "pass" if v else "FAIL"),
    ("latency_p50_ms", "p50 ms", lambda v: fmt_fixed(v, 1)),
    ("latency_p95_ms", "p95 ms", lambda v: fmt_fixed(v, 1)),
    ("latency_p99_ms", "p99 ms", lambda v: fmt_fixed(v, 1)),
    ("ttft_p50_ms", "TTFT p50 ms", lambda v: fmt_fixed(v, 1)),
    ("tpot_p50_ms", "TPOT p50 ms", lambda v: fmt_fixed(v, 2)),
    ("peak_memory_gb", "peak GB", fmt_number),
    ("weight_memory_gb", "weights GB", fmt_number),
    # bytes stored per linear-layer weight × 8: one definition for every method (measure/weight_bits.py)
    ("bits_per_weight", "bits/weight", lambda v: fmt_fixed(v, 2)),
    ("load_s", "load s", lambda v: fmt_fixed(v, 1)),
    ("n_iterations", "n", fmt_number),
)
COST_COLUMNS: tuple[Column, ...] = (
    ("price_per_hour_usd", "$/hour", fmt_usd),
    ("cost_per_1k_tokens_usd", "$ per 1k tokens", fmt_usd),
    ("cost_per_query_usd", "$ per query", fmt_usd),
    ("queries_per_dollar", "queries per $", fmt_number),
    ("savings_vs_baseline_pct", "savings vs baseline", lambda v: fmt_pct(v, 1, signed=True)),
)
ROOFLINE_COLUMNS: tuple[Column, ...] = (
    ("bytes_per_decode_step_mb", "MB read per decode step", lambda v: fmt_fixed(v, 2)),
    ("ceiling_tokens_per_s", "ceiling tokens/s", fmt_number),
    ("decode_tokens_per_s", "measured decode tokens/s", fmt_number),
    ("roofline_pct", "% of ceiling", fmt_pct),
    ("roofline_note", "note", str),
)


def config_table(
    analysis: Analysis, frame: pl.DataFrame, columns: tuple[Column, ...]
) -> tuple[Table | None, str | None]:
    """The per-configuration table of `columns`, and the footnote of its tail percentiles that too few
    samples resolve (headed `p99*`; None when none is)."""
    columns = tuple(column for column in columns if column_or_none(frame, column[0]) is not None)
    if not columns or frame.height == 0:
        return None, None
    varying = analysis.varying_group_columns()
    frame = frame.with_columns(precision_rank(analysis).alias("_rank"))
    frame = frame.sort([*varying, "batch", "_rank"])
    flagged = unresolved_columns(frame, [column for column, _, _ in columns])  # p99 of < 100 samples: p99*
    headers = (
        *(column.capitalize() for column in varying),
        "Batch",
        "Precision",
        *(flag_header(header, column, flagged) for column, header, _ in columns),
    )
    rows = tuple(
        (
            *(str(row[column]) for column in varying),
            str(row["batch"]),
            row["precision"],
            *(formatter(row[column]) if row[column] is not None else "–" for column, _, formatter in columns),
        )
        for row in frame.iter_rows(named=True)
    )
    numeric = (*(False for _ in varying), True, False, *(column != "roofline_note" for column, _, _ in columns))
    return Table(headers, rows, numeric), footnote(flagged)
