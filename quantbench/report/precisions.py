"""The report's order of precisions (the baseline first, unknown ones last), and its tables of one
row per precision."""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.report.document import Table


def precision_rank(analysis: Analysis) -> pl.Expr:
    """Each row's precision as its place in the report's order (the baseline first, unknown ones last)."""
    rank = {precision: index for index, precision in enumerate(analysis.precisions)}
    return pl.col("precision").replace_strict(rank, default=len(rank))


def per_precision(analysis: Analysis, *aggregations: pl.Expr) -> pl.DataFrame:
    """One row per precision (within each varying group), in the report's precision order, holding
    `aggregations` over its rows (batch sizes, ...)."""
    frame = analysis.table.group_by([*analysis.varying_group_columns(), "precision"], maintain_order=True).agg(
        *aggregations
    )
    return frame.sort(precision_rank(analysis))


def per_precision_table(
    analysis: Analysis,
    frame: pl.DataFrame,
    headers: tuple[str, ...],
    cells: Callable[[dict[str, Any]], tuple[str, ...]],
    numeric: tuple[bool, ...],
) -> Table:
    """A table of `per_precision` rows: the varying group columns and the precision, then `headers`
    with each row's `cells`."""
    varying = analysis.varying_group_columns()
    return Table(
        (*(name.capitalize() for name in varying), "Precision", *headers),
        tuple(
            (*(str(row[name]) for name in varying), row["precision"], *cells(row))
            for row in frame.iter_rows(named=True)
        ),
        (*(False for _ in varying), False, *numeric),
    )
