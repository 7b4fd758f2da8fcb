"""The serving section of a report: the study table at one load, the highest load under the SLO,
the load profiles (quantbench.report.serving_profiles), every load level, and the quality, memory
and cost of the weights each server ran."""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_fixed, fmt_number, fmt_pct, fmt_ratio, fmt_usd
from quantbench.analysis.serving import LOAD_UNITS, ServingAnalysis, under_resolved
from quantbench.measure.percentiles import min_samples
from quantbench.report.document import Bullets, Heading, Paragraph, Table
from quantbench.report.served_fidelity import served_fidelity_blocks
from quantbench.report.serving_profiles import profile_blocks

# (column, header, formatter); a header with "{p}" names a percentile, flagged where under-resolved.
Column = tuple[str, str, Callable[[Any], str]]
ms = lambda v: fmt_fixed(v, 0)  # noqa: E731 - one formatter, used by many columns

LEVEL_COLUMNS: tuple[Column, ...] = (
    ("n_requests", "requests", fmt_number),
    ("n_failed_requests", "failed", fmt_number),
    ("request_throughput_per_s", "req/s", fmt_number),
    ("output_tokens_per_s", "output tok/s", fmt_number),
    ("ttft_p50_ms", "TTFT {p50} ms", ms),
    ("ttft_p95_ms", "TTFT {p95} ms", ms),
    ("ttft_p99_ms", "TTFT {p99} ms", ms),
    ("tpot_p50_ms", "TPOT {p50} ms", lambda v: fmt_fixed(v, 1)),
    ("itl_p50_ms", "ITL {p50} ms", lambda v: fmt_fixed(v, 1)),
    ("e2e_p50_ms", "E2E {p50} ms", ms),
    ("e2e_p95_ms", "E2E {p95} ms", ms),
    ("e2e_p99_ms", "E2E {p99} ms", ms),
    ("goodput_per_s", "goodput req/s", fmt_number),
    ("slo_attainment", "SLO met", lambda v: fmt_pct(v * 100 if v is not None else None, 0)),
    # serve.fidelity: the fidelity that applies to the level (its own under load, else at no load)
    ("served_top1_agree", "served top-1 %", lambda v: fmt_fixed(v, 1)),
    ("served_kld_mean", "served KL nats", lambda v: fmt_number(v, 4)),
    ("quality_goodput_per_s", "quality goodput req/s", fmt_number),
    ("cost_per_1k_output_tokens_usd", "$ per 1k output tokens", fmt_usd),
)
# What each server said of itself per level (its /metrics: quantbench.loadgen.server_metric_levels).
SERVER_COLUMNS: tuple[Column, ...] = (
    ("server_requests_running_max", "running max", fmt_number),
    ("server_requests_running_mean", "running mean", fmt_number),
    ("server_requests_waiting_max", "waiting max", fmt_number),
    ("server_kv_cache_usage_max", "KV cache max", lambda v: fmt_pct(v * 100 if v is not None else None, 0)),
    ("server_kv_cache_usage_mean", "KV cache mean", lambda v: fmt_pct(v * 100 if v is not None else None, 0)),
    ("server_preemptions", "preemptions", fmt_number),
    ("server_prompt_tokens", "prompt tokens", fmt_number),
    ("server_prefix_cache_hit_rate", "prefix-cache hits", lambda v: fmt_pct(v * 100 if v is not None else None, 1)),
    ("server_busy_slots_per_decode", "busy slots per decode", fmt_number),
    ("server_metrics_note", "note", str),
)
# Each level's workload as sent (quantbench.loadgen.level_stats): lengths, the usage check, send lag.
WORKLOAD_COLUMNS: tuple[Column, ...] = (
    ("input_tokens_p50", "input tokens p50", fmt_number),
    ("input_tokens_p99", "input tokens p99", fmt_number),
    ("output_tokens_p50", "output tokens p50", fmt_number),
    ("output_tokens_p99", "output tokens p99", fmt_number),
    ("input_tokens_requested_mean", "input asked (mean)", fmt_number),
    ("input_tokens_usage_error_pct", "server's input count vs asked", lambda v: fmt_pct(v, 2)),
    ("send_lag_p99_ms", "send lag p99 ms", lambda v: fmt_fixed(v, 2)),
)
STUDY_COLUMNS: tuple[Column, ...] = (
    ("e2e_p50_ms", "E2E {p50} ms", ms),
    ("e2e_p95_ms", "E2E {p95} ms", ms),
    ("e2e_p98_ms", "E2E {p98} ms", ms),
    ("output_tokens_per_s", "output tok/s", fmt_number),
    ("speed_vs_baseline", "tok/s × vs {baseline}", fmt_ratio),
    ("size_gb", "weights GB", fmt_number),
    ("size_reduction_pct", "size reduction vs {baseline}", fmt_pct),
    ("cost_per_1k_output_tokens_usd", "$ per 1k output tokens", fmt_usd),
)


def _header(template: str, column: str, frame: pl.DataFrame, flagged: set[str], baseline: str = "") -> str:
    """The column's header, its percentile marked `p99*` where some row has too few samples for it."""
    percentile = column.split("_")[1] if column.count("_") >= 2 and column.split("_")[1].startswith("p") else ""
    mark = ""
    if percentile and under_resolved(column, frame):
        mark = "*"
        flagged.add(percentile)
    return template.format(baseline=baseline, **{percentile: f"{percentile}{mark}"} if percentile else {})


def _table(
    serving: ServingAnalysis,
    frame: pl.DataFrame,
    columns: tuple[Column, ...],
    flagged: set[str],
    leading: tuple[tuple[str, str], ...],
    baseline: str = "",
    extra: tuple[Column, ...] = (),
) -> Table:
    columns = tuple(
        c for c in (*columns, *extra) if c[0] in frame.columns and frame.get_column(c[0]).null_count() < frame.height
    )
    varying = serving.varying()
    headers = (
        *(c.capitalize() for c in varying),
        *(header for _, header in leading),
        *(_header(header, column, frame, flagged, baseline) for column, header, _ in columns),
    )
    rows = tuple(
        (
            *(str(row[c]) for c in varying),
            *(_lead(row, name) for name, _ in leading),
            *(formatter(row[column]) if row[column] is not None else "–" for column, _, formatter in columns),
        )
        for row in frame.iter_rows(named=True)
    )
    numeric = (*(False for _ in varying), *(name == "load" for name, _ in leading), *(True for _ in columns))
    return Table(headers, rows, numeric)


def _lead(row: dict[str, Any], name: str) -> str:
    if name == "load":
        return f"{row['load']:g} {LOAD_UNITS[row['load_axis']]}"
    return str(row[name])


def _quality_columns(analysis: Analysis) -> tuple[Column, ...]:
    return tuple((metric.column, metric.label, lambda v: fmt_number(v, 4)) for metric in analysis.quality)


def _joins(analysis: Analysis, serving: ServingAnalysis) -> list:
    """One row per served precision (and group): quality and memory of the same weights, or why not."""
    keys = [*serving.varying(), "precision"]
    frame = serving.rows.unique(keys, keep="first", maintain_order=True)
    columns = (
        *_quality_columns(analysis),
        ("weight_memory_gb", "weights GB", fmt_number),
        ("peak_memory_gb", "offline peak GB", fmt_number),
    )
    table = _table(
        serving, frame, columns, set(), (("precision", "Precision"), ("quality_join", "joined with the offline job"))
    )
    return [
        Paragraph(
            "Quality and memory come from the offline job of the same model and precision, "
            "where it ran the same weights as the server "
            "(the same checkpoint, or the same model and quantization settings); otherwise the row says why not. "
            "Cost is each level's own: the hardware's price over its output tokens/s."
        ),
        table,
    ]


def _server_metrics(serving: ServingAnalysis, rows: pl.DataFrame) -> list:
    """Each level as its server reported it, where a server exposed Prometheus /metrics."""
    measured = [
        c for c, _, _ in SERVER_COLUMNS[:-1] if c in rows.columns and rows.get_column(c).null_count() < rows.height
    ]
    if not measured:
        return []
    sources = rows.get_column("server_metrics_source").drop_nulls().unique(maintain_order=True).to_list()
    return [
        Heading(3, "What the servers reported (/metrics)"),
        Paragraph(
            "Scraped from each server's Prometheus endpoint during the levels ("
            + "; ".join(sorted({source.split(", ", 1)[-1] for source in sources}))
            + "): gauges over the scrapes inside each level's measured requests, counters as their increase "
            "over it; the KV cache as a share of the server's own cache. A dash: the server does not report it."
        ),
        _table(serving, rows, SERVER_COLUMNS, set(), (("precision", "Precision"), ("load", "Load"))),
    ]


def _workload(serving: ServingAnalysis, rows: pl.DataFrame) -> list:
    """Each level's lengths as sent, the server's own input count against the one asked, and how late
    open-loop requests went out; only where a synthetic workload or a trace asked for lengths."""
    if (
        "input_tokens_requested_mean" not in rows.columns
        or rows.get_column("input_tokens_requested_mean").is_null().all()
    ):
        return []
    return [
        Heading(3, "Workload of each level"),
        Paragraph(
            "Token counts of the successful requests (the server's usage first), the input asked and how far the "
            "server's own count is from it (positive: the server counted more), and the open-loop send lag "
            "(sent − scheduled) of the load generator itself."
        ),
        _table(serving, rows, WORKLOAD_COLUMNS, set(), (("precision", "Precision"), ("load", "Load"))),
    ]


def serving_blocks(analysis: Analysis) -> list:
    serving = analysis.serving
    if serving is None:
        return []
    flagged: set[str] = set()
    rows = serving.rows
    engines = (
        ", ".join(rows.get_column("engine").unique(maintain_order=True).to_list()) if "engine" in rows.columns else "?"
    )
    blocks: list = [
        Paragraph(
            f"{rows.get_column('job_dir').n_unique()} serving jobs (engine {engines}), {rows.height} load levels, each "
            "driving an OpenAI-compatible server; one row per job and level."
        )
    ]
    study = serving.study
    if study.height:
        loads = ", ".join(dict.fromkeys(_lead(row, "load") for row in study.iter_rows(named=True)))
        baseline = study.get_column("study_baseline")[0]
        blocks += [
            Heading(3, f"End-to-end latency per precision at {loads}"),
            _table(
                serving,
                study,
                STUDY_COLUMNS,
                flagged,
                (("precision", "Precision"), ("load", "Load")),
                baseline,
                extra=_quality_columns(analysis),
            ),
        ]
    blocks += [Heading(3, "Highest load under the SLO")]
    blocks.append(
        Table(
            (*(c.capitalize() for c in serving.varying()), "Precision", "SLO", "highest load that meets it"),
            tuple(
                (
                    *(str(v) for v, c in zip(key[:-1], serving.group_columns) if c in serving.varying()),
                    key[-1],
                    capacity.limits,
                    capacity.text,
                )
                for key, capacity in serving.capacity.items()
            ),
            (*(False for _ in serving.varying()), False, False, False),
        )
    )
    blocks += profile_blocks(rows, serving.varying())
    # A profile's levels name their role in it (synchronous, throughput, rate, probe).
    profiled = "profile" in rows.columns and (rows.get_column("profile").fill_null("levels") != "levels").any()
    leading = (("precision", "Precision"), *((("role", "Role"),) if profiled else ()), ("load", "Load"))
    blocks += [Heading(3, "Every load level"), _table(serving, rows, LEVEL_COLUMNS, flagged, leading)]
    blocks += _workload(serving, rows)
    blocks += _server_metrics(serving, rows)
    fidelity = served_fidelity_blocks(rows, serving.varying())
    if fidelity:
        blocks += [Heading(3, "Fidelity through the server"), *fidelity]
    blocks += [Heading(3, "Quality, memory and cost of the served weights"), *_joins(analysis, serving)]
    if flagged:
        needed = ", ".join(
            f"{p} needs {min_samples(float(p[1:]))}" for p in sorted(flagged, key=lambda p: float(p[1:]))
        )
        blocks.append(
            Paragraph(
                "\\* A percentile marked `*` comes, in at least one row, "
                f"from fewer requests than it resolves ({needed}): "
                "it is close to the largest value measured and its interval is wide. Send more requests per level "
                "(`serve.requests_per_level`) to resolve it."
            )
        )
    if serving.notes:
        blocks.append(Bullets(tuple(serving.notes)))
    return blocks


SERVING_METHOD = (
    "Serving (scenario=serve): per load level, TTFT = send → first chunk with text, E2E = send → end of the stream, "
    "TPOT = (E2E − TTFT) / (output tokens − 1), ITL = gaps between chunks (vLLM's definitions); percentiles over the "
    "level's successful requests. A level meets the SLO when the p95 of each limited quantity (serve.slo, else "
    "analysis.serve_max_e2e_p95_ms for E2E) is within its limit, at most 5% of its requests failed and it was not "
    "stopped early as over-saturated (its queue kept growing: TTFT or requests in flight rising through it); the "
    "highest load under the SLO is interpolated linearly between the last level that meets it and the first that does "
    "not. "
    "The study table is at analysis.serve_load, else the highest load every precision measured."
)
