"""Which configuration to deploy under memory, latency and quality limits (`quantbench recommend`).

Every ok configuration (precision x batch size, and the hardware where the jobs ran on several
machines) is a candidate, judged on speed (generated tokens/s, or another objective), memory (peak
memory) and quality (drop against the baseline precision). The Pareto frontier holds the candidates
that no other beats on all three at once; the recommendation is the fastest candidate within every
limit given (`--quality-gate`: only those that keep that fraction of the baseline's quality, MLPerf
style). Each other candidate is listed with the reason it was not chosen.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from quantbench.analysis.frontier import Limits, Recommendation, pareto_frontier
from quantbench.errors import QuantbenchError

# `--quality-gate` without a fraction: the one the sweep ran with (analysis.quality_gate).
SWEEP_GATE = object()
OBJECTIVES = {
    "tokens_per_s": "generated tokens/s",
    "qps": "queries/s",
    "queries_per_dollar": "queries per dollar",
}


def _label(row: dict[str, Any], varying: list[str]) -> str:
    return " ".join([*(str(row[column]) for column in varying), f"{row['precision']} @ batch {row['batch']}"])


def _violations(row: dict[str, Any], limits: Limits, memory: str, quality_label: str | None) -> list[str]:
    reasons = []
    if limits.quality_gate is not None:
        if row.get("passes_quality_gate") is None:
            reasons.append("quality gate: its quality or the baseline's was not measured")
        elif not row["passes_quality_gate"]:
            reasons.append(
                f"quality gate: recovers {row['quality_recovery']:.2%} of the baseline's quality "
                f"< {limits.quality_gate:.2%}"
            )
    if limits.max_memory_gb is not None and row[memory] > limits.max_memory_gb:
        reasons.append(f"{memory} {row[memory]:.3f} GB > limit {limits.max_memory_gb:g} GB")
    if limits.max_p95_ms is not None:
        p95 = row.get("latency_p95_ms")
        if p95 is None:
            reasons.append("no p95 latency measured")
        elif p95 > limits.max_p95_ms:
            reasons.append(f"p95 latency {p95:.1f} ms > limit {limits.max_p95_ms:g} ms")
    if limits.max_quality_drop is not None:
        drop = row.get("quality_drop")
        if quality_label is None or drop is None:
            reasons.append("quality not measured for this configuration")
        elif drop > limits.max_quality_drop:
            reasons.append(f"{quality_label} {drop:.3g} > limit {limits.max_quality_drop:g}")
    return reasons


def recommend(
    analysis: Any,
    limits: Limits,
    objective: str = "tokens_per_s",
    memory_column: str = "peak_memory_gb",
    quality_column: str | None = None,
) -> Recommendation:
    """Rank an Analysis's configurations (see quantbench.analysis.analyze) under `limits`."""
    from quantbench.analysis.gate import choose_gate, with_quality_gate
    from quantbench.analysis.quality import metric_by_column, quality_metrics, with_quality_drop

    if objective not in OBJECTIVES:
        raise QuantbenchError(f"unknown objective '{objective}'; choose one of: {', '.join(OBJECTIVES)}")
    table = analysis.table
    notes = list(analysis.notes)
    excluded: list[tuple[str, str]] = []
    varying = analysis.varying_group_columns()
    summary = analysis.sweep.summary
    if "status" in summary.columns:
        for row in summary.filter(pl.col("status") != "ok").iter_rows(named=True):
            excluded.append((_label(row, varying), f"{row['status']}: {row.get('reason') or 'no reason recorded'}"))
    metric = metric_by_column(table, quality_column)
    if quality_column and metric is None:
        raise QuantbenchError(
            f"quality metric '{quality_column}' has no values in this sweep; choose one of: "
            f"{', '.join(m.column for m in quality_metrics(table)) or '(none: run with quality on)'}"
        )
    groups = [column for column in analysis.sweep.group_columns() if column != "max_new_tokens"]
    if metric is not None:
        table = with_quality_drop(table, metric, analysis.settings.baseline, groups)
    else:
        table = table.with_columns(pl.lit(None, dtype=pl.Float64).alias("quality_drop"))
        if limits.max_quality_drop is not None:
            notes.append("this sweep has no quality metrics, so --max-quality-drop excludes every configuration")
    if limits.quality_gate is not None:
        gate = choose_gate(table, limits.quality_gate, analysis.settings.quality_gate_metric)
        table = with_quality_gate(table, gate, analysis.settings.baseline, groups)
        notes.append(gate.describe(analysis.settings.baseline))
    for column in (objective, memory_column):
        if column not in table.columns or table.get_column(column).null_count() == table.height:
            raise QuantbenchError(
                f"the sweep has no values in column '{column}'; choose another objective or memory column"
            )
    if limits.batch is not None:
        for row in table.filter(pl.col("batch") != limits.batch).iter_rows(named=True):
            excluded.append((_label(row, varying), f"batch {row['batch']} (asked for batch {limits.batch})"))
        table = table.filter(pl.col("batch") == limits.batch)
    rows = []
    for row in table.iter_rows(named=True):
        if row.get(objective) is None or row.get(memory_column) is None:
            excluded.append(
                (_label(row, varying), f"no {objective if row.get(objective) is None else memory_column} measured")
            )
        else:
            rows.append(row)
    frontier = pareto_frontier(rows, objective, memory_column)
    quality_label = metric.drop_label if metric else None
    feasible = []
    for row, on_frontier in zip(rows, frontier):
        row["on_frontier"] = on_frontier
        violations = _violations(row, limits, memory_column, quality_label)
        if violations:
            excluded.append((_label(row, varying), "; ".join(violations)))
        else:
            feasible.append(row)
    # Fastest first; among equals, the smaller memory and then the smaller quality drop.
    feasible.sort(
        key=lambda r: (
            -r[objective],
            r[memory_column],
            r["quality_drop"] if r["quality_drop"] is not None else math.inf,
        )
    )
    best = feasible[0] if feasible else None
    for row in feasible[1:]:
        why = f"within the limits, but {row[objective]:.4g} {OBJECTIVES[objective]} < {best[objective]:.4g} of the best"
        if row[objective] == best[objective]:
            why = f"within the limits and as fast as the best, but uses more memory ({row[memory_column]:.3f} GB)"
        excluded.append((_label(row, varying), why))
    candidates = (
        pl.DataFrame(
            [
                {
                    "configuration": _label(row, varying),
                    "precision": row["precision"],
                    "batch": row["batch"],
                    objective: row[objective],
                    memory_column: row[memory_column],
                    "latency_p95_ms": row.get("latency_p95_ms"),
                    "quality_drop": row.get("quality_drop"),
                    "on_frontier": row["on_frontier"],
                }
                for row in rows
            ],
            infer_schema_length=None,
        )
        if rows
        else pl.DataFrame()
    )
    return Recommendation(
        candidates,
        best and {**best, "configuration": _label(best, varying)},
        excluded,
        objective,
        memory_column,
        quality_label,
        notes,
    )


def render(recommendation: Recommendation, limits: Limits) -> str:
    """The recommendation as Markdown text: frontier table, choice, exclusions."""
    from quantbench.analysis.formatting import fmt_fixed, fmt_number
    from quantbench.report.document import Bullets, Document, Heading, Paragraph, Table
    from quantbench.report.markdown import render_markdown

    objective, memory = recommendation.objective, recommendation.memory_column
    document = Document("quantbench recommend")
    given = [
        f"{name} = {value:g}"
        for name, value in (
            ("max memory GB", limits.max_memory_gb),
            ("max p95 ms", limits.max_p95_ms),
            ("max quality drop", limits.max_quality_drop),
            ("batch", limits.batch),
            ("quality gate", limits.quality_gate),
        )
        if value is not None
    ]
    document.add(
        Paragraph(
            f"Limits: {', '.join(given) or 'none'}. Objective: highest {OBJECTIVES[objective]}; memory: `{memory}`; "
            f"quality: {recommendation.quality_label or 'not measured in this sweep'}."
        )
    )
    if recommendation.notes:
        document.add(Bullets(tuple(recommendation.notes)))
    candidates = recommendation.candidates
    if candidates.height:
        frontier = candidates.filter(pl.col("on_frontier")).sort(objective, descending=True)
        document.add(Heading(2, f"Pareto frontier ({OBJECTIVES[objective]}, {memory}, quality drop)"))
        document.add(
            Table(
                ("configuration", OBJECTIVES[objective], memory, "p95 ms", "quality drop"),
                tuple(
                    (
                        row["configuration"],
                        fmt_number(row[objective]),
                        fmt_fixed(row[memory], 3),
                        fmt_fixed(row["latency_p95_ms"], 1),
                        fmt_number(row["quality_drop"]),
                    )
                    for row in frontier.iter_rows(named=True)
                ),
                (False, True, True, True, True),
            )
        )
    document.add(Heading(2, "Recommendation"))
    best = recommendation.best
    if best is None:
        document.add(Paragraph("No configuration meets every limit; relax one of them (the reasons are below)."))
    else:
        quality = "" if best.get("quality_drop") is None else f", quality drop {fmt_number(best['quality_drop'])}"
        document.add(
            Paragraph(
                f"**{best['configuration']}**: {fmt_number(best[objective])} {OBJECTIVES[objective]}, "
                f"{memory} {fmt_fixed(best[memory], 3)} GB, p95 {fmt_fixed(best.get('latency_p95_ms'), 1)} ms{quality}."
            )
        )
    if recommendation.excluded:
        document.add(Heading(2, "Not chosen"))
        document.add(Bullets(tuple(f"{label}: {reason}" for label, reason in recommendation.excluded)))
    return render_markdown(document)
