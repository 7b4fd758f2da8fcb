"""Report columns of tail percentiles that their samples do not resolve: `p99*` and a footnote.

A column is flagged when any row shown took its percentile from fewer samples than
quantbench.measure.percentiles.min_samples asks (p95: 20, p99: 100), counted by the row's
`n_<metric>_samples` (`n_iterations` in sweeps older than those counts).
"""

from __future__ import annotations

from typing import Any, Sequence

import polars as pl

from quantbench.measure.percentiles import is_unresolved, min_samples, n_samples_column, parse_percentile_column


def _counts(frame: pl.DataFrame, metric: str) -> list[int]:
    for column in (n_samples_column(metric), "n_iterations"):
        if column in frame.columns:
            return [int(value) for value in frame.get_column(column).drop_nulls().to_list()]
    return []


def unresolved_columns(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, tuple[float, int]]:
    """{column: (q, the fewest samples of any row)} for the percentile columns some row does not resolve."""
    flagged: dict[str, tuple[float, int]] = {}
    for column in columns:
        parsed = parse_percentile_column(column)
        if parsed is None or column not in frame.columns:
            continue
        metric, q = parsed
        rows = frame.filter(pl.col(column).is_not_null())
        counts = _counts(rows, metric)
        if counts and is_unresolved(q, min(counts)):
            flagged[column] = (q, min(counts))
    return flagged


def _label(q: float) -> str:
    return f"p{q:g}"


def flag_header(header: str, column: str, flagged: dict[str, Any]) -> str:
    """`p99 ms` -> `p99* ms` for a flagged column."""
    if column not in flagged:
        return header
    label = _label(flagged[column][0])
    return header.replace(label, f"{label}*", 1) if label in header else f"{header}*"


def footnote(flagged: dict[str, tuple[float, int]]) -> str | None:
    """The footnote under a table with flagged columns; None when none is."""
    if not flagged:
        return None
    by_q: dict[float, int] = {}
    for q, n in flagged.values():
        by_q[q] = min(n, by_q.get(q, n))
    parts = [
        f"{_label(q)} from as few as {n} samples "
        f"(it needs at least {min_samples(q)}: below that no sample lies beyond it, "
        "so it is interpolated between the largest ones)"
        for q, n in sorted(by_q.items())
    ]
    return (
        f"\\* {'; '.join(parts)}. Such a percentile is not a tail the data resolves; its bootstrap interval is in "
        "summary.parquet (`<column>_ci_low`/`_ci_high`). Raise `bench.min_iterations` (docs/configuration.md)."
    )
