"""The report's jobs section: how many jobs ended how, why each that is not ok is not, and which
jobs their time budget cut short."""

from __future__ import annotations

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.report.document import Paragraph, Table


def jobs_blocks(analysis: Analysis) -> list:
    summary = analysis.sweep.summary
    counts = summary.group_by("status").len().sort("status") if "status" in summary.columns else None
    text = ", ".join(f"{count} {status}" for status, count in counts.iter_rows()) if counts is not None else ""
    repeats = summary.get_column("n_repeats").max() if "n_repeats" in summary.columns else None
    if repeats is not None and repeats > 1:  # one summary row per configuration (bench.repeats)
        blocks: list = [
            Paragraph(
                f"{summary.height} configurations, each run up to {repeats} times (bench.repeats; "
                f"ok repeats per row in `n_repeats`): {text}."
            )
        ]
    else:
        blocks = [Paragraph(f"{summary.height} jobs: {text}.")]
    if counts is not None:
        not_ok = summary.filter(pl.col("status") != "ok")
        if not_ok.height:
            rows = tuple(
                (str(row.get("batch")), str(row.get("precision")), row["status"], row.get("reason") or "")
                for row in not_ok.iter_rows(named=True)
            )
            blocks.append(Table(("Batch", "Precision", "Status", "Reason"), rows, (True, False, False, False)))
    if summary.schema.get("budget_cut") == pl.Boolean:  # absent from sweeps made before bench.max_seconds
        cut = summary.filter(pl.col("budget_cut").fill_null(False))
        if cut.height:
            blocks.append(
                Paragraph(
                    f"{cut.height} job(s) cut by their time budget (`bench.max_seconds`, `bench.warmup_max_seconds`): "
                    "fewer iterations than asked, so wider intervals."
                )
            )
            rows = tuple(
                (str(row.get("batch")), str(row.get("precision")), row.get("budget_cut_reason") or "")
                for row in cut.iter_rows(named=True)
            )
            blocks.append(Table(("Batch", "Precision", "Cut"), rows, (True, False, False)))
    return blocks
