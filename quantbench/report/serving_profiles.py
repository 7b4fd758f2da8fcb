"""The load profiles of the serving section: each sweep's levels in the order they ran, each SLO
search's answer with its bracket and probes, and the levels stopped early as over-saturated."""

from __future__ import annotations

from typing import Any

import polars as pl

from quantbench.analysis.formatting import fmt_fixed, fmt_number
from quantbench.report.document import Bullets, Heading, Paragraph, Table

COLUMNS = (
    ("n_requests", "requests", fmt_number),
    ("request_throughput_per_s", "req/s", fmt_number),
    ("ttft_p50_ms", "TTFT p50 ms", lambda v: fmt_fixed(v, 0)),
    ("e2e_p95_ms", "E2E p95 ms", lambda v: fmt_fixed(v, 0)),
)


def _load(row: dict[str, Any]) -> str:
    if row.get("concurrency") is not None:
        return f"{row['concurrency']:g} users"
    return f"{row['request_rate']:g} req/s"


def _ended(row: dict[str, Any]) -> str:
    if row.get("stopped_early"):
        return "over-saturated: stopped early"
    if row.get("level_meets_slo") is None:
        return ""
    return "meets the SLO" if row["level_meets_slo"] else f"misses the SLO ({row.get('level_slo_misses')})"


def _levels_table(job: pl.DataFrame) -> Table:
    headers = ("level", "role", "load", *(header for _, header, _ in COLUMNS), "")
    rows = tuple(
        (
            str(row["level"]),
            str(row.get("role") or ""),
            _load(row),
            *(formatter(row.get(column)) for column, _, formatter in COLUMNS),
            _ended(row),
        )
        for row in job.sort("level").iter_rows(named=True)
    )
    return Table(headers, rows, (True, False, True, *(True for _ in COLUMNS), False))


def profile_blocks(rows: pl.DataFrame, varying: list[str]) -> list:
    """Blocks for every serving job whose levels a profile other than `levels` decided."""
    if "profile" not in rows.columns:
        return []  # results from before the profiles
    jobs = rows.filter(pl.col("profile").is_not_null() & (pl.col("profile") != "levels"))
    blocks: list = []
    for job in jobs.partition_by("job_dir", maintain_order=True):
        first = job.row(0, named=True)
        # One job's levels may lie on both load axes (a sweep): the axis does not name the job.
        named = ("model", "precision", *(c for c in varying if c not in ("load_axis", "model", "precision")))
        who = " ".join(str(first[c]) for c in named if c in first and first[c] is not None)
        if first["profile"] == "sweep":
            blocks += [Heading(3, f"Sweep: {who}"), _levels_table(job)]
            if first.get("sweep_note"):
                blocks.append(Paragraph(first["sweep_note"]))
        elif first["profile"] == "slo-search":
            answer = first.get("slo_search_reason") or "no answer recorded"
            blocks += [Heading(3, f"SLO search: {who}"), Paragraph(f"{answer}."), _levels_table(job)]
    stopped = rows.filter(pl.col("stopped_early").fill_null(False)) if "stopped_early" in rows.columns else rows.clear()
    if stopped.height:
        blocks.append(
            Bullets(
                tuple(
                    f"{row['precision']} at {_load(row)} stopped early after {row['n_requests']} requests: "
                    f"{row['stopped_early_reason']}"
                    for row in stopped.iter_rows(named=True)
                )
            )
        )
    return blocks
