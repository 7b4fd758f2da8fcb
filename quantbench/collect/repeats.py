"""Repeats of one configuration (`bench.repeats`) folded into one summary row.

A sweep with `bench.repeats=N` runs every configuration N times, each repeat its own job (its
`bench.repeat` index is part of its config). `jobs.parquet` keeps one row per job; the summary
has one row per configuration (and per load level of a serving job), built here:

- the configuration is the job config less `bench.repeat` (`configuration_hash`);
- each numeric metric is the mean over the configuration's ok repeats (each repeat's own rate,
  percentile, ... then their mean; a number they all share stays as it is); text and flags are
  the first ok repeat's;
- `n_repeats` counts the ok repeats, `repeats_failed` the others (the reason names the first);
- the rates (RATE_COLUMNS) get a t-interval over the repeats (`<rate>_ci_low/_ci_high`,
  `ci_kind`), the interval that holds the variance between runs;
- `job_dir` is the first ok repeat's directory, `job_dirs` all of them (a JSON list), for the
  analysis, which reads each repeat's iterations.

A configuration run once is its job's row as it was, plus `n_repeats` = 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

# Rates whose between-repeat interval the summary carries.
RATE_COLUMNS = ("tokens_per_s", "qps", "request_throughput_per_s", "output_tokens_per_s")
# Columns that tell a serving job's summary rows (its load levels) apart.
LEVEL_COLUMNS = ("concurrency", "request_rate")
# What the row says it measured: with the config hash, the key of a configuration (a result
# whose stored config is partial still keeps its precision and batch apart).
IDENTITY_COLUMNS = ("model", "precision", "backend", "batch", "hardware", "device", "dataset", "scenario", "engine")
CI_KIND_REPEATS = "t-interval over repeats"
CI_KIND_SINGLE = "one run: no between-run interval"


@dataclass(frozen=True)
class RepeatInterval:
    """The mean of a quantity over repeats (one value per repeat) and its t-interval."""

    mean: float
    ci_low: float
    ci_high: float
    n_repeats: int


def repeat_interval(values: Sequence[float], confidence: float = 0.95) -> RepeatInterval:
    """Student's t-interval over repeats: the repeat is the unit, so the interval holds the
    variance between runs (machine drift, a neighbour's load), not only the noise within one job.
    Positive values (rates) get the interval of their logs, exponentiated (around the geometric
    mean; `mean` is the arithmetic mean the summary shows). NaN bounds for fewer than two repeats:
    one run says nothing about the next."""
    data = np.asarray([value for value in values if value is not None and np.isfinite(value)], dtype=float)
    n = len(data)
    if n == 0:
        return RepeatInterval(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n < 2:
        return RepeatInterval(mean, math.nan, math.nan, n)
    t = _t_quantile(0.5 + confidence / 2, n - 1)
    if np.all(data > 0):  # rates: multiplicative noise, so the interval of the log rates, never below 0
        logs = np.log(data)
        half = t * float(logs.std(ddof=1)) / math.sqrt(n)
        return RepeatInterval(mean, math.exp(logs.mean() - half), math.exp(logs.mean() + half), n)
    half = t * float(data.std(ddof=1)) / math.sqrt(n)
    return RepeatInterval(mean, mean - half, mean + half, n)


@lru_cache(maxsize=64)
def _t_quantile(probability: float, degrees_of_freedom: int) -> float:
    """Student's t quantile, once per sweep (scipy's ppf costs milliseconds a call: seconds at 400
    configurations). scipy is imported here, not at import: a sweep without repeats never needs it."""
    from scipy import stats

    return float(stats.t.ppf(probability, degrees_of_freedom))


def configuration_key(row: dict[str, Any]) -> tuple:
    """Rows with the same key are repeats of one configuration (at one load level)."""
    identity = row.get("configuration_hash") or row.get("job_dir")
    return (identity, *(row.get(column) for column in (*IDENTITY_COLUMNS, *LEVEL_COLUMNS)))


def group_repeats(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The job rows grouped by configuration, in order of each configuration's first job. Only
    distinct repeat indices share a group: two jobs of one configuration and one repeat index
    (a sweep that lists a value twice) stay two rows, as before repeats existed."""
    groups: list[list[dict[str, Any]]] = []
    open_groups: dict[tuple, list[int]] = {}  # key -> indices into groups
    for row in rows:
        key = configuration_key(row)
        target = next(
            (
                index
                for index in open_groups.get(key, [])
                if all(r.get("repeat") != row.get("repeat") for r in groups[index])
            ),
            None,
        )
        if target is None:
            open_groups.setdefault(key, []).append(len(groups))
            groups.append([row])
        else:
            groups[target].append(row)
    return groups


def configuration_row(repeats: list[dict[str, Any]], confidence: float = 0.95) -> dict[str, Any]:
    """One summary row for the repeats of one configuration (see the module docstring)."""
    ok = [row for row in repeats if row.get("status") == "ok"]
    if len(repeats) == 1:
        return {**repeats[0], "n_repeats": len(ok), "ci_kind": CI_KIND_SINGLE if ok else None}
    if not ok:
        row = dict(repeats[0])
        row.update(n_repeats=0, repeats_failed=len(repeats), job_dirs=json.dumps([r.get("job_dir") for r in repeats]))
        return row
    folded: dict[str, Any] = dict(ok[0])
    for column in ok[0]:
        values = [r.get(column) for r in ok if _is_number(r.get(column))]
        # A number every repeat shares (batch, max_new_tokens, a load level) stays as it is.
        if values and column != "repeat" and len(set(values)) > 1:
            folded[column] = sum(values) / len(values)
    for column in RATE_COLUMNS:
        rates = [r.get(column) for r in ok if _is_number(r.get(column))]
        if rates:
            interval = repeat_interval(rates, confidence)
            folded[f"{column}_ci_low"], folded[f"{column}_ci_high"] = interval.ci_low, interval.ci_high
    failed = [r for r in repeats if r.get("status") != "ok"]
    if failed:
        folded["reason"] = f"{len(failed)} of {len(repeats)} repeats not ok (first: {failed[0].get('reason')})"
    folded.update(
        n_repeats=len(ok),
        repeats_failed=len(failed),
        ci_kind=CI_KIND_REPEATS if len(ok) > 1 else CI_KIND_SINGLE,
        repeat=None,
        job_dirs=json.dumps([r.get("job_dir") for r in ok]),
        started_at=min(_times(repeats, "started_at"), default=None),  # ISO 8601 in UTC: text order is time order
        finished_at=max(_times(repeats, "finished_at"), default=None),
    )
    return folded


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _times(rows: list[dict[str, Any]], column: str) -> list[str]:
    return [str(row[column]) for row in rows if row.get(column)]


def configuration_rows(rows: list[dict[str, Any]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """The summary rows: one per configuration (and load level), from the job rows."""
    return [configuration_row(group, confidence) for group in group_repeats(rows)]
