"""Findings of the serving rows: which precision has the lowest tail latency at the study load,
and how much load each sustains under its SLO. Each sentence states the measured values."""

from __future__ import annotations

import polars as pl

from quantbench.analysis.formatting import fmt_fixed, fmt_number
from quantbench.analysis.serving import LOAD_UNITS, ServingAnalysis, under_resolved


def serving_findings(serving: ServingAnalysis | None) -> list[str]:
    if serving is None:
        return []
    lines = []
    study = serving.study
    varying = serving.varying()
    for _, part in (
        study.partition_by(serving.group_columns, as_dict=True, maintain_order=True).items() if study.height else ()
    ):
        measured = part.filter(pl.col("e2e_p95_ms").is_not_null()).sort("e2e_p95_ms")
        if measured.height < 2:
            continue
        best = first = measured.row(0, named=True)
        where = " ".join(f"{column} {first[column]}" for column in varying)
        unit = LOAD_UNITS[first["load_axis"]]
        flag = " (from fewer than 20 requests: close to the maximum)" if under_resolved("e2e_p95_ms", measured) else ""
        others = "; ".join(
            f"{row['precision']} {fmt_fixed(row['e2e_p95_ms'], 0)} ms"
            for row in measured.iter_rows(named=True)
            if row["precision"] != best["precision"]
        )
        lines.append(
            f"Serving{' ' + where if where else ''} at {best['load']:g} {unit}: "
            f"{best['precision']} has the lowest E2E p95, "
            f"{fmt_fixed(best['e2e_p95_ms'], 0)} ms{flag} ({others}), "
            f"at {fmt_number(best['output_tokens_per_s'])} output tokens/s."
        )
    judged = {key: capacity for key, capacity in serving.capacity.items() if capacity.limits != "none set"}
    if judged:
        lines.append(
            "Highest load under the SLO: "
            + "; ".join(
                f"{' '.join(str(value) for value, column in zip(key[:-1], serving.group_columns) if column in varying)}"
                f" {key[-1]}: {capacity.text.split(' (')[0]}".strip()
                for key, capacity in judged.items()
            )
            + f" ({next(iter(judged.values())).limits})."
        )
    return lines
