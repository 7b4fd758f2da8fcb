"""The serving section's fidelity block: each serving job's fidelity through its server (serve.fidelity)
at no load and under load, against the offline job of the same weights where the sweep has one, or
why it was not measured."""

from __future__ import annotations

from typing import Any

import polars as pl

from quantbench.analysis.formatting import fmt_fixed, fmt_number
from quantbench.report.document import Bullets, Paragraph, Table


def _interval(row: dict[str, Any], column: str, decimals: int | None = None) -> str:
    value, low, high = row.get(column), row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    shown = fmt_fixed(value, decimals) if decimals is not None else fmt_number(value, 4)
    if value is None or low is None or high is None:
        return shown
    bounds = (
        (fmt_fixed(low, decimals), fmt_fixed(high, decimals))
        if decimals is not None
        else (
            fmt_number(low, 3),
            fmt_number(high, 3),
        )
    )
    return f"{shown} [{bounds[0]}, {bounds[1]}]"


def served_fidelity_blocks(rows: pl.DataFrame, varying: list[str]) -> list:
    """A table row per serving job with served fidelity on; the reasons where it was not measured."""
    if "served_fidelity_protocol" not in rows.columns and "served_fidelity_unavailable" not in rows.columns:
        return []
    jobs = rows.unique("job_dir", keep="first", maintain_order=True)
    measured, reasons = [], []
    for row in jobs.iter_rows(named=True):
        label = " ".join([*(str(row[c]) for c in varying), str(row["precision"])])
        if row.get("served_fidelity_unavailable"):
            reasons.append(f"{label}: not measured: {row['served_fidelity_unavailable']}")
            continue
        for phase in ("no_load", "under_load"):
            error = row.get(f"served_fidelity_error_{phase}")
            if error:
                reasons.append(f"{label}, {phase.replace('_', ' ')}: {error}")
        if row.get("served_fidelity_protocol") is None:
            continue
        measured.append(
            (
                label,
                _interval(row, "served_top1_agree_no_load", 1),
                _interval(row, "served_top1_agree_under_load", 1),
                _interval(row, "served_kld_mean_no_load"),
                _interval(row, "served_kld_mean_under_load"),
                fmt_number(row.get("kld_mean"), 4),
                f"{fmt_number(row.get('served_fidelity_tokens_no_load'))} / "
                f"{fmt_number(row.get('served_fidelity_tokens_under_load'))}",
                str(row.get("served_fidelity_protocol")),
            )
        )
    blocks: list = [
        Paragraph(
            "Top-1 agreement (%) and KL divergence (nats) of the served model against the reference precision, "
            "scored through the serving API on the offline KL scorer's windows and cached reference, at no load "
            "and beside one load level (95% intervals in brackets). The served KL divergence is over the "
            "reference's top k and the tokens the server returned plus one bucket for the rest: a lower bound of "
            "the full one, equal to the offline `kld_mean` (its column here, where the offline job of the same "
            "weights ran) where the server's top k holds the reference's (docs/serving.md)."
        )
    ]
    if measured:
        blocks.append(
            Table(
                (
                    "Job",
                    "top-1 % no load",
                    "top-1 % under load",
                    "KL no load",
                    "KL under load",
                    "offline KL",
                    "tokens (no load / under load)",
                    "protocol",
                ),
                tuple(measured),
                (False, True, True, True, True, True, True, False),
            )
        )
    if reasons:
        blocks.append(Bullets(tuple(reasons)))
    return blocks
