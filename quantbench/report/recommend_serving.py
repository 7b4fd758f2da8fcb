"""`quantbench recommend` on serving rows: which precision to serve, for N users, under latency limits.

A candidate is one precision (in one group: model, engine, hardware, ...) at one load level; with
`--users N` it is the precision's level at concurrency N, measured or interpolated linearly between
the two measured levels around N (outside them: not a candidate, and the reason says which loads
were measured). The limits: `--max-e2e-p95-ms`, `--max-ttft-p95-ms`, `--min-goodput` (requests/s
meeting serve.slo), the served model's fidelity (serve.fidelity: `--min-top1-agreement` in percent,
`--max-served-kld` in nats, on the fidelity that applies to the level: its own under load, else the
job's at no load; `--min-quality-goodput`, quantbench/loadgen/quality_goodput.py), and the offline
ones that apply to the served weights: `--max-memory-gb` and `--max-quality-drop`, from the offline
job of the same weights (quantbench/analysis/serving.py). The choice is the highest output tokens/s
within every limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from quantbench.analysis.formatting import fmt_fixed, fmt_number
from quantbench.analysis.frontier import Limits, Recommendation, pareto_frontier
from quantbench.analysis.serving import LOAD_UNITS, at_load
from quantbench.errors import QuantbenchError

OBJECTIVE = "output_tokens_per_s"
OBJECTIVE_LABEL = "output tokens/s"
DEFAULT_MEMORY_COLUMN = "weight_memory_gb"  # a server's own memory is not measured; its weights are


@dataclass(frozen=True)
class ServingLimits:
    users: float | None = None
    max_e2e_p95_ms: float | None = None
    max_ttft_p95_ms: float | None = None
    min_goodput: float | None = None
    min_top1_agreement: float | None = None  # percent, as served_top1_agree
    max_served_kld: float | None = None  # nats, as served_kld_mean
    min_quality_goodput: float | None = None  # requests/s, as quality_goodput_per_s

    def given(self) -> bool:
        return any(value is not None for value in vars(self).values())


def _label(row: dict[str, Any], varying: list[str]) -> str:
    return " ".join(
        [
            *(str(row[column]) for column in varying),
            f"{row['precision']} @ {row['load']:g} {LOAD_UNITS[row['load_axis']]}",
        ]
    )


def _violations(
    row: dict[str, Any], limits: ServingLimits, offline: Limits, memory: str, quality_label: str | None
) -> list[str]:
    reasons = []
    for limit, column, name in (
        (limits.max_e2e_p95_ms, "e2e_p95_ms", "E2E p95"),
        (limits.max_ttft_p95_ms, "ttft_p95_ms", "TTFT p95"),
    ):
        if limit is not None:
            value = row.get(column)
            if value is None:
                reasons.append(f"no {name} measured")
            elif value > limit:
                reasons.append(f"{name} {value:,.0f} ms > limit {limit:,.0f} ms")
    if limits.min_goodput is not None:
        goodput = row.get("goodput_per_s")
        if goodput is None:
            reasons.append("no goodput measured (the job ran without serve.slo)")
        elif goodput < limits.min_goodput:
            reasons.append(f"goodput {goodput:.3g} req/s < minimum {limits.min_goodput:g} req/s")
    reasons += _fidelity_violations(row, limits)
    why_not_joined = "" if row.get("quality_joined") else f" ({row.get('quality_join')})"
    if offline.max_memory_gb is not None:
        value = row.get(memory)
        if value is None:
            reasons.append(f"{memory} not measured{why_not_joined}")
        elif value > offline.max_memory_gb:
            reasons.append(f"{memory} {value:.3f} GB > limit {offline.max_memory_gb:g} GB")
    if offline.max_quality_drop is not None:
        drop = row.get("quality_drop")
        if quality_label is None or drop is None:
            reasons.append(f"quality not measured for these weights{why_not_joined}")
        elif drop > offline.max_quality_drop:
            reasons.append(f"{quality_label} {drop:.3g} > limit {offline.max_quality_drop:g}")
    return reasons


def _fidelity_violations(row: dict[str, Any], limits: ServingLimits) -> list[str]:
    from quantbench.loadgen.quality_goodput import fidelity_misses

    reasons = []
    if limits.min_top1_agreement is not None or limits.max_served_kld is not None:
        missed = fidelity_misses(row, limits.min_top1_agreement, limits.max_served_kld)
        if missed and row.get("served_top1_agree") is None and row.get("served_kld_mean") is None:
            why = row.get("served_fidelity_unavailable") or row.get("served_fidelity_error_no_load")
            missed = [f"no served fidelity measured ({why or 'the job ran without serve.fidelity.enabled'})"]
        where = f" ({row['fidelity_measured_at']})" if missed and row.get("fidelity_measured_at") else ""
        reasons += [reason + where for reason in missed]
    if limits.min_quality_goodput is not None:
        value = row.get("quality_goodput_per_s")
        if value is None:
            reasons.append("no quality goodput measured (the job set no serve.fidelity_min_top1 or _max_kld)")
        elif value < limits.min_quality_goodput:
            reasons.append(f"quality goodput {value:.3g} req/s < minimum {limits.min_quality_goodput:g} req/s")
    return reasons


def recommend_serving(
    analysis: Any,
    limits: ServingLimits,
    offline: Limits,
    memory_column: str = DEFAULT_MEMORY_COLUMN,
    quality_column: str | None = None,
) -> Recommendation:
    from quantbench.analysis.quality import metric_by_column, with_quality_drop

    serving = analysis.serving
    if serving is None:
        raise QuantbenchError("this sweep has no ok serving rows (scenario=serve); serving limits need them")
    if offline.max_p95_ms is not None or offline.batch is not None:
        raise QuantbenchError(
            "--max-p95-ms and --batch judge offline batches; judge serving levels with "
            "--users, --max-e2e-p95-ms, --max-ttft-p95-ms, --min-goodput or --min-top1-agreement"
        )
    varying = serving.varying()
    rows_frame = serving.rows
    metric = metric_by_column(analysis.table, quality_column)
    if metric is not None and metric.column in rows_frame.columns:
        rows_frame = with_quality_drop(rows_frame, metric, analysis.settings.baseline, serving.group_columns)
    else:
        rows_frame = rows_frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("quality_drop"))
    notes = list(analysis.notes) + list(serving.notes)
    excluded: list[tuple[str, str]] = []
    summary = analysis.sweep.summary
    if {"status", "scenario"} <= set(summary.columns):
        for row in summary.filter((pl.col("status") != "ok") & (pl.col("scenario") == "serve")).iter_rows(named=True):
            excluded.append(
                (str(row.get("precision")), f"{row['status']}: {row.get('reason') or 'no reason recorded'}")
            )
    candidates: list[dict[str, Any]] = []
    for _, part in rows_frame.partition_by(
        [*serving.group_columns, "precision"], as_dict=True, maintain_order=True
    ).items():
        levels = list(part.iter_rows(named=True))
        if limits.users is None:
            candidates += levels
            continue
        first = levels[0]
        if first["load_axis"] != "concurrency":
            excluded.append((_label(first, varying), "open-loop levels (a request rate), not a number of users"))
            continue
        row, how = at_load(levels, float(limits.users), LOAD_UNITS["concurrency"])
        if row is None:
            excluded.append((" ".join([*(str(first[c]) for c in varying), first["precision"]]), how))
            continue
        candidates.append({**row, "how": how})
    for row in candidates:
        row["_memory"] = row.get(memory_column) if row.get(memory_column) is not None else math.inf
    frontier = pareto_frontier(candidates, OBJECTIVE, "_memory")
    quality_label = metric.drop_label if metric else None
    feasible = []
    for row, on_frontier in zip(candidates, frontier):
        row["on_frontier"] = on_frontier
        broken = _violations(row, limits, offline, memory_column, quality_label)
        if broken:
            excluded.append((_label(row, varying), "; ".join(broken)))
        else:
            feasible.append(row)
    feasible.sort(
        key=lambda r: (
            -(r[OBJECTIVE] or 0.0),
            r["_memory"],
            r["quality_drop"] if r["quality_drop"] is not None else math.inf,
        )
    )
    best = feasible[0] if feasible else None
    for row in feasible[1:]:
        excluded.append(
            (
                _label(row, varying),
                f"within the limits, but {row[OBJECTIVE]:.4g} {OBJECTIVE_LABEL} < {best[OBJECTIVE]:.4g} of the best",
            )
        )
    table = (
        pl.DataFrame(
            [
                {
                    "configuration": _label(row, varying),
                    "precision": row["precision"],
                    "load": row["load"],
                    OBJECTIVE: row[OBJECTIVE],
                    memory_column: row.get(memory_column),
                    "e2e_p95_ms": row.get("e2e_p95_ms"),
                    "ttft_p95_ms": row.get("ttft_p95_ms"),
                    "goodput_per_s": row.get("goodput_per_s"),
                    "served_top1_agree": row.get("served_top1_agree"),
                    "served_kld_mean": row.get("served_kld_mean"),
                    "quality_goodput_per_s": row.get("quality_goodput_per_s"),
                    "quality_drop": row.get("quality_drop"),
                    "on_frontier": row["on_frontier"],
                    "how": row.get("how") or "",
                }
                for row in candidates
            ],
            infer_schema_length=None,
        )
        if candidates
        else pl.DataFrame()
    )
    return Recommendation(
        table,
        best and {**best, "configuration": _label(best, varying)},
        excluded,
        OBJECTIVE,
        memory_column,
        quality_label,
        notes,
    )


def _candidate_columns(candidates: pl.DataFrame, memory: str) -> list[tuple[str, Any, bool]]:
    """(header, cell of a row, numeric) of the candidates table; the served fidelity's where measured."""
    columns: list[tuple[str, Any, bool]] = [
        ("configuration", lambda row: row["configuration"] + (" *" if row["on_frontier"] else ""), False),
        (OBJECTIVE_LABEL, lambda row: fmt_number(row[OBJECTIVE]), True),
        ("E2E p95 ms", lambda row: fmt_fixed(row["e2e_p95_ms"], 0), True),
        ("TTFT p95 ms", lambda row: fmt_fixed(row["ttft_p95_ms"], 0), True),
        ("goodput req/s", lambda row: fmt_number(row["goodput_per_s"]), True),
    ]
    if candidates.get_column("served_top1_agree").null_count() < candidates.height:
        columns += [
            ("served top-1 %", lambda row: fmt_fixed(row["served_top1_agree"], 1), True),
            ("served KL nats", lambda row: fmt_number(row["served_kld_mean"], 4), True),
            ("quality goodput req/s", lambda row: fmt_number(row["quality_goodput_per_s"]), True),
        ]
    return columns + [
        (memory, lambda row: fmt_fixed(row[memory], 3), True),
        ("quality drop", lambda row: fmt_number(row["quality_drop"]), True),
        ("note", lambda row: row["how"], False),
    ]


def render_serving(recommendation: Recommendation, limits: ServingLimits, offline: Limits) -> str:
    from quantbench.report.document import Bullets, Document, Heading, Paragraph, Table
    from quantbench.report.markdown import render_markdown

    memory = recommendation.memory_column
    given = [
        f"{name} = {value:g}"
        for name, value in (
            ("users", limits.users),
            ("max E2E p95 ms", limits.max_e2e_p95_ms),
            ("max TTFT p95 ms", limits.max_ttft_p95_ms),
            ("min goodput req/s", limits.min_goodput),
            ("min served top-1 agreement %", limits.min_top1_agreement),
            ("max served KL nats", limits.max_served_kld),
            ("min quality goodput req/s", limits.min_quality_goodput),
            ("max memory GB", offline.max_memory_gb),
            ("max quality drop", offline.max_quality_drop),
        )
        if value is not None
    ]
    document = Document("quantbench recommend (serving)")
    document.add(
        Paragraph(
            f"Limits: {', '.join(given) or 'none'}. Objective: highest {OBJECTIVE_LABEL}; "
            f"memory: `{memory}` of the offline job "
            f"that ran the same weights; quality: {recommendation.quality_label or 'not measured in this sweep'}."
        )
    )
    if recommendation.notes:
        document.add(Bullets(tuple(recommendation.notes)))
    candidates = recommendation.candidates
    if candidates.height:
        document.add(Heading(2, f"Candidates ({OBJECTIVE_LABEL}, {memory}, quality drop; * on the Pareto frontier)"))
        columns = _candidate_columns(candidates, memory)
        document.add(
            Table(
                tuple(header for header, _, _ in columns),
                tuple(
                    tuple(cell(row) for _, cell, _ in columns)
                    for row in candidates.sort(OBJECTIVE, descending=True, nulls_last=True).iter_rows(named=True)
                ),
                tuple(numeric for _, _, numeric in columns),
            )
        )
    document.add(Heading(2, "Recommendation"))
    best = recommendation.best
    if best is None:
        document.add(
            Paragraph("No precision meets every limit at this load; relax one of them (the reasons are below).")
        )
    else:
        how = f" ({best['how']})" if best.get("how") else ""
        quality = "" if best.get("quality_drop") is None else f", quality drop {fmt_number(best['quality_drop'])}"
        document.add(
            Paragraph(
                f"**{best['configuration']}**{how}: {fmt_number(best[OBJECTIVE])} {OBJECTIVE_LABEL}, E2E p95 "
                f"{fmt_fixed(best.get('e2e_p95_ms'), 0)} ms, "
                f"TTFT p95 {fmt_fixed(best.get('ttft_p95_ms'), 0)} ms{quality}."
            )
        )
    if recommendation.excluded:
        document.add(Heading(2, "Not chosen"))
        document.add(Bullets(tuple(f"{label}: {reason}" for label, reason in recommendation.excluded)))
    return render_markdown(document)
