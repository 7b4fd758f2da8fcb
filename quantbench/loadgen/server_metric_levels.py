"""From the scraped /metrics samples to each level's server_* columns and the job's facts.

A level's window is its measured phase (LevelRun.started_at to finished_at, perf_counter seconds,
the warm-up excluded), the one its client-side statistics cover:

- gauges (running and waiting requests, KV-cache usage as a fraction): max and mean over the
  scrapes inside the window; null when none fell inside (a level shorter than
  serve.metrics_interval_s);
- counters (preemptions, prompt and generated tokens, prefix-cache queried and hit tokens): their
  increase from the last scrape at or before the window's start (the `measured start` scrape) to
  the first at or after its end, summed step by step over the scrapes between, so that a counter
  that goes down (a restarted server) counts from its new value, as Prometheus' increase() does;
- server_prefix_cache_hit_rate: hit tokens / queried tokens over the level; null without queries
  (vLLM counts none when its prefix cache is off);
- server_busy_slots_per_decode (llama-server): busy slots per decode step over the level, the
  batch its continuous batching actually formed.

A failed scrape keeps the level: its columns come from the scrapes that succeeded, and
server_metrics_note says what is missing and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from quantbench.jobdir import SERVER_METRICS_FILE
from quantbench.loadgen.server_metric_maps import COUNTER, MAPS, MetricMap, known_prefixes, map_for

if TYPE_CHECKING:
    from quantbench.loadgen.load import LevelRun

# Every quantity some engine's map has, in the order the columns list them.
QUANTITIES = tuple(dict.fromkeys(name for metric_map in MAPS for name in metric_map.quantities))
GAUGE_COLUMNS = {
    "requests_running": "server_requests_running",
    "requests_waiting": "server_requests_waiting",
    "kv_cache_usage": "server_kv_cache_usage",
}
COUNTER_COLUMNS = {
    "preemptions": "server_preemptions",
    "prompt_tokens": "server_prompt_tokens",
    "generation_tokens": "server_generation_tokens",
    "prefix_cache_queries": "server_prefix_cache_queried_tokens",
    "prefix_cache_hits": "server_prefix_cache_hit_tokens",
}
LEVEL_COLUMNS = (
    "server_metrics_note",
    "server_metrics_scrapes",
    "server_metrics_failed_scrapes",
    *(f"{column}_{stat}" for column in GAUGE_COLUMNS.values() for stat in ("max", "mean")),
    *COUNTER_COLUMNS.values(),
    "server_prefix_cache_hit_rate",
    "server_busy_slots_per_decode",
)


@dataclass(frozen=True)
class Series:
    """One row per scrape (scrape, t_s, perf_counter_s, level, trigger, error) and a column per
    quantity the map reads (null where that scrape lacks it); no quantity columns without a map."""

    frame: pl.DataFrame
    metric_map: MetricMap | None


def quantity_series(samples: pl.DataFrame) -> Series:
    metric_map = map_for(set(samples.get_column("metric").drop_nulls().unique().to_list()))
    scrapes = samples.group_by("scrape", maintain_order=True).agg(
        pl.col("t_s", "perf_counter_s", "scrape_ms", "level", "trigger", "error").first()
    )
    if metric_map is None:
        return Series(scrapes, None)
    totals: dict[int, dict[str, tuple[float, int]]] = {}
    grouped = (
        samples.filter(pl.col("metric").is_not_null())
        .group_by("scrape", "metric")
        .agg(pl.col("value").sum().alias("total"), pl.len().alias("count"))
    )
    for scrape, metric, total, count in grouped.iter_rows():
        totals.setdefault(scrape, {})[metric] = (total, count)
    values = {
        name: [finite(quantity.read(totals.get(scrape, {}))) for scrape in scrapes.get_column("scrape")]
        for name, quantity in metric_map.quantities.items()
    }
    return Series(
        scrapes.with_columns(pl.Series(name, column, dtype=pl.Float64) for name, column in values.items()), metric_map
    )


def finite(value: float | None) -> float | None:
    """None for a missing reading and for NaN or infinity (Prometheus text allows them)."""
    return value if value is not None and math.isfinite(value) else None


def increase(values: list[float]) -> tuple[float, int]:
    """(the counter's increase over consecutive readings, how many times it went down)."""
    total, resets = 0.0, 0
    for before, after in zip(values, values[1:]):
        if after >= before:
            total += after - before
        else:  # the server restarted: its counter began again from zero
            total += after
            resets += 1
    return total, resets


def _empty(note: str | None) -> dict[str, Any]:
    return {column: None for column in LEVEL_COLUMNS} | {
        "server_metrics_note": note,
        "server_metrics_scrapes": 0,
        "server_metrics_failed_scrapes": 0,
    }


def level_columns(series: Series | None, run: LevelRun, interval_s: float | None, reason: str | None) -> dict[str, Any]:
    """The level's server_* columns; all null, with `reason`, when the job scraped nothing."""
    if series is None or reason is not None:
        return _empty(reason)
    frame, start, end = series.frame, run.started_at, run.finished_at
    failed = frame.filter(pl.col("error").is_not_null() & (pl.col("level") == run.level.index))
    ok = frame.filter(pl.col("error").is_null()).sort("perf_counter_s")
    inside = ok.filter((pl.col("perf_counter_s") > start) & (pl.col("perf_counter_s") < end))
    columns = _empty(None) | {"server_metrics_scrapes": inside.height, "server_metrics_failed_scrapes": failed.height}
    notes = []
    if failed.height:
        level_scrapes = frame.filter(pl.col("level") == run.level.index).height
        notes.append(f"{failed.height} of {level_scrapes} scrapes failed (first: {failed.get_column('error')[0]})")
    if series.metric_map is None:
        notes.append(
            f"the server's metrics match no engine map (known: {known_prefixes()}); "
            f"its samples are in {SERVER_METRICS_FILE}"
        )
        return columns | {"server_metrics_note": "; ".join(notes)}
    if inside.height == 0:
        notes.append(
            f"no scrape fell inside the level's measured {end - start:.2f} s "
            f"(serve.metrics_interval_s={interval_s:g}): its gauges are null"
        )
    for quantity, column in GAUGE_COLUMNS.items():
        values = inside.get_column(quantity).drop_nulls() if quantity in inside.columns else pl.Series([])
        if len(values):
            columns[f"{column}_max"], columns[f"{column}_mean"] = float(values.max()), float(values.mean())
    counters, counter_notes = _counters(ok, start, end, series.metric_map)
    notes += counter_notes
    for quantity, column in COUNTER_COLUMNS.items():
        columns[column] = counters.get(quantity)
    queries, hits = counters.get("prefix_cache_queries"), counters.get("prefix_cache_hits")
    if queries and hits is not None:
        columns["server_prefix_cache_hit_rate"] = hits / queries
    elif queries == 0:
        notes.append("no prefix-cache queries in the level (the server's prefix cache is off)")
    decodes, busy = counters.get("decode_calls"), counters.get("busy_slot_decodes")
    if decodes and busy is not None:
        columns["server_busy_slots_per_decode"] = busy / decodes
    return columns | {"server_metrics_note": "; ".join(notes) or None}


def _counters(ok: pl.DataFrame, start: float, end: float, metric_map: MetricMap) -> tuple[dict[str, float], list[str]]:
    """Each counter's increase over the level, and notes on how its bracket was found."""
    times = ok.get_column("perf_counter_s").to_list()
    before = max((i for i, t in enumerate(times) if t <= start), default=None)
    after = min((i for i, t in enumerate(times) if t >= end), default=None)
    notes = []
    if before is None:
        before = next((i for i, t in enumerate(times) if t > start), None)
        notes.append("no scrape before the level succeeded: its counters start at the first inside it")
    if after is None:
        after = max((i for i, t in enumerate(times) if t < end), default=None)
        notes.append("no scrape after the level succeeded: its counters end at the last inside it")
    if before is None or after is None or after <= before:
        return {}, [*notes, "too few scrapes succeeded to measure the counters over the level"]
    span = ok.slice(before, after - before + 1)
    found: dict[str, float] = {}
    restarted = False
    for name, quantity in metric_map.quantities.items():
        if quantity.kind != COUNTER:
            continue
        values = span.get_column(name).drop_nulls().to_list()
        if len(values) >= 2:
            found[name], resets = increase(values)
            restarted |= resets > 0
    if restarted:
        notes.append("a counter went down within the level (the server restarted?): counted from its new value")
    return found, notes


def job_facts(
    samples: pl.DataFrame | None, url: str | None, interval_s: float | None, reason: str | None
) -> dict[str, Any]:
    """What result.json records of the scraping: its source (endpoint and map) or why there is none,
    the scrapes and their cost, and which quantities the server reported."""
    facts: dict[str, Any] = {
        "server_metrics_source": None,
        "server_metrics_reason": reason,
        "server_metrics_interval_s": interval_s,
        "server_metrics_scrapes_in_job": 0,
        "server_metrics_failed_scrapes_in_job": 0,
        "server_metrics_scrape_ms_p50": None,
        "server_metrics_scrape_ms_max": None,
        "server_metrics_reported": None,
        "server_metrics_not_reported": None,
    }
    if samples is None or samples.height == 0:
        return facts | {"server_metrics_reason": reason or "no /metrics scrape was made (no level ran)"}
    series = quantity_series(samples)
    scrapes = series.frame
    cost = scrapes.get_column("scrape_ms")
    facts |= {
        "server_metrics_scrapes_in_job": scrapes.height,
        "server_metrics_failed_scrapes_in_job": scrapes.get_column("error").is_not_null().sum(),
        "server_metrics_scrape_ms_p50": float(cost.median()),
        "server_metrics_scrape_ms_max": float(cost.max()),
    }
    if reason is not None:
        return facts
    if series.metric_map is None:
        return facts | {
            "server_metrics_reason": f"GET {url} answers Prometheus text whose names match no engine map "
            f"(known: {known_prefixes()})"
        }
    reported = [name for name in series.metric_map.quantities if scrapes.get_column(name).null_count() < scrapes.height]
    return facts | {
        "server_metrics_source": f"GET {url}, {series.metric_map.describe()}",
        "server_metrics_reported": ", ".join(reported),
        "server_metrics_not_reported": ", ".join(name for name in QUANTITIES if name not in reported) or None,
    }
