"""The serving rows of a sweep (scenario=serve, one row per job and load level), analysed.

- Load axis: a closed-loop level is named by its `concurrency` (users), an open-loop one by its
  `request_rate`; each row gets `load_axis` and `load`, and only rows on the same axis are compared.
- Cost: each level's own price and output tokens/s (`cost_per_1k_output_tokens_usd`).
- Quality and memory come from the offline job of the same model and precision, but only where it
  ran the same weights as the server: the same checkpoint where both recorded one, else the same
  model and precision settings. Otherwise the row says why they are not joined.
- Highest load under the SLO: a level meets it as quantbench.loadgen.slo judges (the p95 of each
  limited quantity: TTFT, TPOT, E2E from `serve.slo`, or `analysis.serve_max_e2e_p95_ms` for jobs
  without one, within its limit, at most 5% of its requests failed, not over-saturated); between
  the last level that meets it and the first that does not, the crossing is interpolated linearly
  in load.
- The study table: E2E p50/p95/p98 of each precision at one load (`analysis.serve_load`, else the
  highest load every precision measured), its size and speed against the baseline precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from quantbench.analysis.cost import cost_per_1k_tokens
from quantbench.analysis.quality import quality_metrics
from quantbench.analysis.sweep import GROUP_COLUMNS
from quantbench.config.schema import AnalysisConfig
from quantbench.loadgen.quality_goodput import between_levels
from quantbench.loadgen.slo import SLO_OBJECTIVES, describe_limits, misses, slo_limits
from quantbench.measure.percentiles import min_samples, n_samples_column

SERVE = "serve"
LOAD_UNITS = {"concurrency": "users", "request_rate": "req/s", "trace": "× trace speed"}
JOINED_MEMORY = ("weight_memory_gb", "peak_memory_gb")
# Level columns interpolated between two measured loads (recommend --users).
INTERPOLATED = (
    "request_throughput_per_s",
    "output_tokens_per_s",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "goodput_per_s",
    "cost_per_1k_output_tokens_usd",
)


def under_resolved(column: str, frame: pl.DataFrame) -> bool:
    """Whether a percentile column (`e2e_p99_ms`) of any row in `frame` comes from too few samples."""
    name, _, rest = column.partition("_p")
    samples = n_samples_column(name)
    if not rest or samples not in frame.columns or frame.height == 0:
        return False
    needed = min_samples(float(rest.split("_")[0]))
    counts = frame.get_column(samples).drop_nulls()
    return counts.len() > 0 and int(counts.min()) < needed


def is_serving(frame: pl.DataFrame) -> pl.Expr:
    return pl.col("scenario") == SERVE if "scenario" in frame.columns else pl.lit(False)


@dataclass
class Capacity:
    """The highest load of one precision (in one group) that meets its SLO."""

    max_load: float | None  # None: not even the lowest load meets it, or no SLO
    text: str  # for the report: "3.0 users (interpolated between 2 and 4)"
    limits: str  # the SLO as judged


@dataclass
class ServingAnalysis:
    rows: pl.DataFrame  # one row per ok serving job and level, with load, cost and joined columns
    group_columns: list[str]  # what must match for rows to be compared (load_axis included)
    capacity: dict[tuple, Capacity]  # (group values..., precision) -> its highest load under the SLO
    study: pl.DataFrame  # one row per group and precision at the study load
    notes: list[str] = field(default_factory=list)
    sweep: Any = None  # the analysed sweep: its jobs' files (server_metrics.parquet) for figures

    def varying(self) -> list[str]:
        return [c for c in self.group_columns if c != "scenario" and self.rows.get_column(c).n_unique() > 1]


def _limits(result: dict[str, Any] | None, settings: AnalysisConfig) -> tuple[dict[str, float], str]:
    """The job's SLO (`serve.slo`), else the analysis' p95 E2E bound; and where it came from."""
    limits = slo_limits((((result or {}).get("config") or {}).get("serve") or {}).get("slo"))
    if limits:
        return limits, "serve.slo"
    if settings.serve_max_e2e_p95_ms is not None:
        return {"e2e_ms": float(settings.serve_max_e2e_p95_ms)}, "analysis.serve_max_e2e_p95_ms"
    return {}, ""


def _differences(served: dict[str, Any], offline: dict[str, Any]) -> list[str]:
    keys = sorted(set(served) | set(offline))
    return [
        f"{key} {offline.get(key)!r} offline, {served.get(key)!r} served"
        for key in keys
        if served.get(key) != offline.get(key)
    ]


def unknown_weights(served: dict[str, Any]) -> str:
    """Why the weights a serving job ran are unknown ('' when they are known)."""
    metrics = served.get("metrics") or {}
    if metrics.get("server_url") and not metrics.get("server_command"):
        return "an endpoint quantbench did not start (engine.url): which weights it serves is unknown"
    return ""


def same_weights(served: dict[str, Any] | None, offline: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the server ran the weights the offline job measured, from what both result.json
    recorded; the second item says how that was decided, or why not."""
    if served is None or offline is None:
        return False, "a result.json cannot be read"
    if unknown_weights(served):
        return False, unknown_weights(served)
    served_metrics, offline_metrics = served.get("metrics") or {}, offline.get("metrics") or {}
    served_checkpoint, offline_checkpoint = served_metrics.get("checkpoint"), offline_metrics.get("checkpoint")
    if served_checkpoint and offline_checkpoint:
        if served_checkpoint == offline_checkpoint:
            return True, f"same checkpoint ({served_checkpoint})"
        return False, f"different checkpoints: served {served_checkpoint}, offline {offline_checkpoint}"
    served_config, offline_config = served.get("config") or {}, offline.get("config") or {}
    for node, what in (("model", "model settings"), ("precision", "quantization settings")):
        differences = _differences(served_config.get(node) or {}, offline_config.get(node) or {})
        if differences:
            return False, f"different {what}: {'; '.join(differences)}"
    return True, "same model and quantization settings"


def _join(sweep: Any, serve_rows: pl.DataFrame, offline: pl.DataFrame) -> pl.DataFrame:
    """Quality and memory columns from the matching offline job, and `quality_join` saying how or why not."""
    quality_columns = [metric.column for metric in quality_metrics(offline)]
    quality_columns += [
        f"{c}{end}" for c in list(quality_columns) for end in ("_ci_low", "_ci_high") if f"{c}{end}" in offline.columns
    ]
    carried = [c for c in (*quality_columns, *JOINED_MEMORY) if c in offline.columns]
    joined: list[dict[str, Any]] = []
    for row in serve_rows.iter_rows(named=True):
        values: dict[str, Any] = {column: None for column in carried}
        served = sweep.result(row["job_dir"])
        if served is not None and unknown_weights(served):
            joined.append({**values, "quality_joined": False, "quality_join": f"not joined: {unknown_weights(served)}"})
            continue
        candidates = (
            offline.filter((pl.col("model") == row["model"]) & (pl.col("precision") == row["precision"]))
            if offline.height
            else offline
        )
        if candidates.height == 0:
            joined.append(
                {
                    **values,
                    "quality_joined": False,
                    "quality_join": f"no offline job of {row['model']} {row['precision']} in this sweep",
                }
            )
            continue
        # The same machine first: its memory is the one this server would see.
        candidates = candidates.sort(pl.col("hardware") != row.get("hardware"))
        matches, hows, reasons = [], [], []
        for candidate in candidates.iter_rows(named=True):
            same, why = same_weights(served, sweep.result(candidate["job_dir"]))
            if same:
                matches.append(candidate)
                hows.append(why)
            else:
                reasons.append(why)
        if not matches:
            joined.append({**values, "quality_joined": False, "quality_join": f"not joined: {reasons[0]}"})
            continue
        for column in carried:
            values[column] = next((match[column] for match in matches if match.get(column) is not None), None)
        joined.append({**values, "quality_joined": True, "quality_join": hows[0]})
    schema = {**{c: offline.schema[c] for c in carried}, "quality_joined": pl.Boolean, "quality_join": pl.Utf8}
    added = pl.DataFrame(joined, schema=schema)
    return serve_rows.drop([c for c in schema if c in serve_rows.columns]).hstack(added)


def _crossing(lower: tuple[float, float], upper: tuple[float, float], limit: float) -> float:
    """The load where a quantity measured at two loads, taken as linear between them, reaches `limit`."""
    (load_a, value_a), (load_b, value_b) = lower, upper
    if value_b == value_a:
        return load_a
    return load_a + (limit - value_a) / (value_b - value_a) * (load_b - load_a)


def capacity_of(levels: list[dict[str, Any]], limits: dict[str, float], unit: str) -> tuple[float | None, str]:
    """(highest load meeting `limits`, how it was found) over one precision's levels."""
    levels = sorted(levels, key=lambda row: row["load"])
    for index, row in enumerate(levels):
        broken = misses(row, limits)
        if not broken:
            continue
        if index == 0:
            return None, f"none: the lowest load ({row['load']:g} {unit}) misses it ({'; '.join(broken)})"
        previous = levels[index - 1]
        crossings = []
        for key, limit in limits.items():
            column = SLO_OBJECTIVES[key][0]
            value, before = row.get(column), previous.get(column)
            if value is not None and before is not None and value > limit:
                crossings.append(_crossing((previous["load"], before), (row["load"], value), limit))
        failed = any("requests failed" in reason for reason in broken)
        found = previous["load"] if failed or not crossings else min(crossings)
        how = (
            "the last level that meets it; the next has too many failed requests"
            if failed and found == previous["load"]
            else "the last level that meets it"
            if found == previous["load"]
            else f"interpolated between {previous['load']:g} and {row['load']:g} {unit}"
        )
        return found, f"{found:.3g} {unit} ({how}; at {row['load']:g} {unit}: {'; '.join(broken)})"
    top = levels[-1]["load"]
    return top, f"≥ {top:g} {unit} (every measured level meets it; higher loads not measured)"


def _describe(limits: dict[str, float], source: str) -> str:
    if not limits:
        return "none set"
    return f"{describe_limits(limits)} ({source})"


def analyze_serving(
    sweep: Any, serve_rows: pl.DataFrame, offline: pl.DataFrame, settings: AnalysisConfig, precisions: list[str]
) -> ServingAnalysis | None:
    """The serving analysis of `serve_rows` (ok serving rows with hardware columns); None without any."""
    if serve_rows.height == 0:
        return None
    # A replayed trace's level (serve.trace) has neither load number: its axis is the trace, its load
    # the replay's speed (serve.trace_speed), so it is compared only with replays of a trace.
    traced = pl.col("trace").is_not_null() if "trace" in serve_rows.columns else pl.lit(False)
    speed = pl.col("trace_speed").cast(pl.Float64) if "trace_speed" in serve_rows.columns else pl.lit(1.0)
    rows = serve_rows.with_columns(
        pl.when(traced)
        .then(pl.lit("trace"))
        .when(pl.col("concurrency").is_not_null())
        .then(pl.lit("concurrency"))
        .otherwise(pl.lit("request_rate"))
        .alias("load_axis"),
        pl.when(traced)
        .then(speed.fill_null(1.0))
        .otherwise(pl.coalesce(pl.col("concurrency").cast(pl.Float64), pl.col("request_rate").cast(pl.Float64)))
        .alias("load"),
        cost_per_1k_tokens(pl.col("price_per_hour_usd"), pl.col("output_tokens_per_s")).alias(
            "cost_per_1k_output_tokens_usd"
        )
        if "price_per_hour_usd" in serve_rows.columns
        else pl.lit(None, dtype=pl.Float64).alias("cost_per_1k_output_tokens_usd"),
    )
    rows = _join(sweep, rows, offline)
    rank = {precision: index for index, precision in enumerate(precisions)}
    rows = rows.with_columns(pl.col("precision").replace_strict(rank, default=len(rank)).alias("_rank"))
    groups = [c for c in GROUP_COLUMNS if c in rows.columns] + ["load_axis"]
    rows = rows.sort([*groups, "_rank", "load"], nulls_last=True).drop("_rank")
    notes: list[str] = _token_count_notes(rows)
    capacity: dict[tuple, Capacity] = {}
    for key, part in rows.partition_by([*groups, "precision"], as_dict=True, maintain_order=True).items():
        first = part.row(0, named=True)
        limits, source = _limits(sweep.result(first["job_dir"]), settings)
        unit = LOAD_UNITS[first["load_axis"]]
        if not limits:
            capacity[key] = Capacity(None, "no SLO set (serve.slo, or analysis.serve_max_e2e_p95_ms)", "none set")
            continue
        found, text = capacity_of(list(part.iter_rows(named=True)), limits, unit)
        capacity[key] = Capacity(found, text, _describe(limits, source))
    study = _study(rows, groups, settings, notes)
    return ServingAnalysis(rows, groups, capacity, study, notes, sweep)


def _token_count_notes(rows: pl.DataFrame) -> list[str]:
    """A note for each level whose output tokens were counted with the model's tokenizer (the server
    sent no usage and the request did not stop at max_tokens): that count may differ from the
    tokens the server generated, and so may every per-token figure of the level."""
    if "n_output_tokens_from_tokenizer" not in rows.columns:
        return []  # results from before the count was recorded
    counted = rows.filter(pl.col("n_output_tokens_from_tokenizer").fill_null(0) > 0)
    return [
        f"{row['precision']} at {row['load_axis']} {row['load']:g}: "
        f"{int(row['n_output_tokens_from_tokenizer'])} requests' "
        "output tokens were counted with the model's tokenizer (no usage from the server, and the request did not stop "
        "at max_tokens); tokens/s and TPOT rest on that count"
        for row in counted.iter_rows(named=True)
    ]


def _study(rows: pl.DataFrame, groups: list[str], settings: AnalysisConfig, notes: list[str]) -> pl.DataFrame:
    """Per group: every precision at one load, with its size and speed against the baseline."""
    out = []
    for part in rows.partition_by(groups, maintain_order=True):
        precisions = part.get_column("precision").unique(maintain_order=True).to_list()
        loads = [set(part.filter(pl.col("precision") == p).get_column("load").to_list()) for p in precisions]
        common = sorted(set.intersection(*loads))
        unit = LOAD_UNITS[part.get_column("load_axis")[0]]
        load = (
            settings.serve_load
            if settings.serve_load is not None and settings.serve_load in common
            else (common[-1] if common else None)
        )
        if settings.serve_load is not None and settings.serve_load not in common:
            notes.append(
                f"analysis.serve_load={settings.serve_load:g} was not measured by every precision "
                f"(common loads: {', '.join(f'{v:g}' for v in common) or 'none'}); the study table uses "
                + (f"{load:g} {unit}" if load is not None else "none")
            )
        if load is None:
            notes.append(
                f"no load level was measured by every precision of {', '.join(precisions)}: no study table for them"
            )
            continue
        at_load = part.filter(pl.col("load") == load).unique("precision", keep="first", maintain_order=True)
        baseline = settings.baseline if settings.baseline in precisions else precisions[0]
        if baseline != settings.baseline:
            notes.append(
                f"serving: baseline precision '{settings.baseline}' was not served; "
                f"sizes and speeds are against '{baseline}'"
            )
        base = at_load.filter(pl.col("precision") == baseline).row(0, named=True)
        for row in at_load.iter_rows(named=True):
            size, base_size = _size(row), _size(base)
            out.append(
                {
                    **row,
                    "study_baseline": baseline,
                    "size_gb": size,
                    "size_reduction_pct": (1 - size / base_size) * 100 if size and base_size else None,
                    "speed_vs_baseline": row["output_tokens_per_s"] / base["output_tokens_per_s"]
                    if row.get("output_tokens_per_s") and base.get("output_tokens_per_s")
                    else None,
                }
            )
    return pl.DataFrame(out, infer_schema_length=None) if out else pl.DataFrame()


def _size(row: dict[str, Any]) -> float | None:
    """Weights in GB: what the offline job of the same weights measured, else the served checkpoint's size on disk."""
    return row.get("weight_memory_gb") or row.get("checkpoint_size_gb")


def at_load(levels: list[dict[str, Any]], load: float, unit: str) -> tuple[dict[str, Any] | None, str]:
    """One precision's level at `load`: the measured one, or one interpolated linearly between the
    two measured loads around it; (None, why) outside the measured range."""
    levels = sorted(levels, key=lambda row: row["load"])
    for row in levels:
        if row["load"] == load:
            return row, ""
    for lower, upper in zip(levels, levels[1:]):
        if lower["load"] < load < upper["load"]:
            share = (load - lower["load"]) / (upper["load"] - lower["load"])
            row = dict(lower)
            for column in INTERPOLATED:
                a, b = lower.get(column), upper.get(column)
                row[column] = a + share * (b - a) if a is not None and b is not None else None
            if "served_top1_agree" in lower:  # the served fidelity (serve.fidelity) is not interpolated
                row |= between_levels(lower, upper, share)
            row["load"] = load
            return row, f"interpolated between {lower['load']:g} and {upper['load']:g} {unit}"
    measured = ", ".join(f"{row['load']:g}" for row in levels)
    return None, f"no level at {load:g} {unit} measured (measured: {measured} {unit})"
