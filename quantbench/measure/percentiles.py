"""Percentiles that say how many samples they come from, and whether those samples resolve them.

The q-th percentile of n samples is resolved only when at least one sample lies beyond it:
n >= 100 / (100 - q), so p95 needs 20 samples and p99 needs 100. Below that, np.percentile
interpolates between the largest samples (p99 of 10 iterations is all but their maximum): a
number, but not the tail it is named after. Such a percentile is flagged in the report (`p99*`)
and its bootstrap interval (resampling the iterations) in the summary shows how loose it is.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

TAIL_PERCENTILES = (95, 99)  # the ones with a bootstrap interval in the summary
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
# `latency_p99_ms` -> ("latency", 99): the metric a percentile column belongs to.
_PERCENTILE_COLUMN = re.compile(r"^(?P<metric>.+?)_p(?P<q>\d+(?:\.\d+)?)_")


def min_samples(q: float) -> int:
    """The fewest samples whose q-th percentile has a sample beyond it (p95: 20, p99: 100)."""
    return 1 if q <= 50 else math.ceil(100 / (100 - q) - 1e-9)


def bootstrap_interval(estimates: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap estimates (along the first axis)."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail], axis=0)
    return float(low), float(high)


def is_unresolved(q: float, n_samples: int | None) -> bool:
    return n_samples is not None and n_samples < min_samples(q)


def parse_percentile_column(column: str) -> tuple[str, float] | None:
    """(metric, q) for a percentile column (`latency_p99_ms` -> ("latency", 99.0)), else None."""
    match = _PERCENTILE_COLUMN.match(column)
    return (match["metric"], float(match["q"])) if match else None


def n_samples_column(metric: str) -> str:
    """The count of samples behind a metric's percentiles, offline and serving alike (`n_latency_samples`,
    `n_e2e_samples`): `n_` first, like every count column (`n_iterations`, `n_requests`)."""
    return f"n_{metric}_samples"


def percentile_metrics(
    metric: str, values: Sequence[float], percentiles: Sequence[int], seed: int = 0
) -> dict[str, float | int | None]:
    """`<metric>_p<q>_ms` for each q, `n_<metric>_samples`, and for p95/p99 the percentile
    bootstrap interval `<metric>_p<q>_ms_ci_low/_ci_high` (resampling the samples; NaN below 2)."""
    data = np.asarray([value for value in values if value is not None], dtype=float)
    out: dict[str, float | int | None] = {n_samples_column(metric): int(data.size)}
    rng = np.random.default_rng(seed)
    resamples = data[rng.integers(0, data.size, (BOOTSTRAP_RESAMPLES, data.size))] if data.size >= 2 else None
    for q in percentiles:
        name = f"{metric}_p{q}_ms"
        out[name] = float(np.percentile(data, q)) if data.size else None
        if q in TAIL_PERCENTILES:
            low = high = math.nan
            if resamples is not None:
                low, high = bootstrap_interval(np.percentile(resamples, q, axis=1))
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = low, high
    return out
