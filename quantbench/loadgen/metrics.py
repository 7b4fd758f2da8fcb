"""Serving statistics of one load level, computed from its request records (vLLM's definitions).

- TTFT: send -> first chunk with generated text; E2E: send -> end of the stream; per successful
  request. TPOT per request: (E2E - TTFT) / (output tokens - 1). ITL: the gaps between chunks,
  pooled over the level's successful requests.
- Percentiles: numpy's linear interpolation. Each carries a bootstrap interval (percentile method,
  resampling requests; for ITL a request's gaps move together, since they share its batch-mates)
  and the number of samples. A p99 from fewer than 100 requests is flagged (`p99_few_requests`):
  it is close to the maximum and its interval is wide.
- Throughput over the level's duration (first send to last end): successful requests per second,
  output (generated) and input tokens per second.
- Goodput: successful requests per second that meet every objective in `serve.slo`
  (ttft_ms, tpot_ms, e2e_ms); `slo_attainment` is their share of all requests sent (failed
  requests miss). Both are null when no objective is set.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from quantbench.loadgen.records import TOKEN_SOURCES
from quantbench.measure.percentiles import BOOTSTRAP_RESAMPLES, CONFIDENCE, bootstrap_interval, n_samples_column

if TYPE_CHECKING:
    from quantbench.loadgen.records import RequestRecord

FEW_REQUESTS_FOR_P99 = 100
PERCENTILES = {"ttft": (50, 95, 99), "tpot": (50, 95, 99), "itl": (50, 95, 99), "e2e": (50, 95, 98, 99)}
_RESAMPLE_CHUNK = 50  # resamples per vectorised step: bounds memory for large pooled ITL sets


def _grouped_percentiles(
    groups: Sequence[np.ndarray], qs: Sequence[float], rng: np.random.Generator, resamples: int
) -> np.ndarray:
    """[resamples, len(qs)] percentiles of the pooled values of resampled groups (inverted CDF)."""
    values = np.concatenate(groups)
    owner = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    order = np.argsort(values, kind="stable")
    values, owner = values[order], owner[order]
    out = np.empty((resamples, len(qs)))
    for start in range(0, resamples, _RESAMPLE_CHUNK):
        stop = min(start + _RESAMPLE_CHUNK, resamples)
        counts = np.stack(
            [np.bincount(rng.integers(0, len(groups), len(groups)), minlength=len(groups)) for _ in range(start, stop)]
        )
        cumulative = np.cumsum(counts[:, owner], axis=1)
        for column, q in enumerate(qs):
            wanted = q / 100 * cumulative[:, -1:]
            positions = np.minimum((cumulative < wanted).sum(axis=1), len(values) - 1)
            out[start:stop, column] = values[positions]
    return out


def _percentile_columns(
    name: str, groups: Sequence[np.ndarray], confidence: float, resamples: int, rng: np.random.Generator
) -> dict[str, Any]:
    """<name>_p<q>_ms, its _ci_low/_ci_high, <name>_mean_ms and n_<name>_samples."""
    qs = PERCENTILES[name]
    groups = [np.asarray(group, dtype=float) for group in groups if len(group)]
    pooled = np.concatenate(groups) if groups else np.array([])
    columns: dict[str, Any] = {
        n_samples_column(name): int(len(pooled)),
        f"{name}_mean_ms": float(pooled.mean()) if len(pooled) else None,
    }
    if not len(pooled):
        for q in qs:
            columns |= {f"{name}_p{q}_ms": None, f"{name}_p{q}_ms_ci_low": None, f"{name}_p{q}_ms_ci_high": None}
        return columns
    if len(groups) >= 2:
        estimates = _grouped_percentiles(groups, qs, rng, resamples)
    else:
        estimates = np.full((1, len(qs)), math.nan)  # one request: no interval
    for column, q in enumerate(qs):
        low, high = bootstrap_interval(estimates[:, column], confidence) if len(groups) >= 2 else (None, None)
        columns |= {
            f"{name}_p{q}_ms": float(np.percentile(pooled, q)),
            f"{name}_p{q}_ms_ci_low": low,
            f"{name}_p{q}_ms_ci_high": high,
        }
    return columns


def meets_slo(record: RequestRecord, slo: dict[str, float | None]) -> bool:
    if not record.ok:
        return False
    checks = {
        "ttft_ms": record.ttft_ms,
        "tpot_ms": record.tpot_ms if record.tpot_ms is not None else 0.0,
        "e2e_ms": record.e2e_ms,
    }
    for key, value in checks.items():
        limit = slo.get(key)
        if limit is not None and (value is None or value > limit):
            return False
    return True


def level_summary(
    records: Sequence[RequestRecord],
    duration_s: float,
    slo: dict[str, float | None],
    seed: int = 0,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any]:
    """The level's summary row (without its identity: concurrency / request_rate are added by the caller)."""
    ok = [record for record in records if record.ok]
    cancelled = sum(record.cancelled for record in records)
    rng = np.random.default_rng(seed)
    output_tokens = sum(record.output_tokens or 0 for record in ok)
    input_tokens = sum(record.input_tokens or 0 for record in ok)
    summary: dict[str, Any] = {
        "n_requests": len(records),
        "n_failed_requests": len(records) - len(ok) - cancelled,
        # In flight when the level stopped early (over-saturated): cancelled by the client, not failed.
        "n_cancelled_requests": cancelled,
        "duration_s": duration_s,
        "request_throughput_per_s": len(ok) / duration_s,
        "output_tokens_per_s": output_tokens / duration_s,
        "input_tokens_per_s": input_tokens / duration_s,
        "output_tokens_mean": output_tokens / len(ok) if ok else None,
        "input_tokens_mean": input_tokens / len(ok) if ok else None,
        "p99_few_requests": len(ok) < FEW_REQUESTS_FOR_P99,
        # Where the output token counts came from (quantbench.loadgen.records): the tokenizer's count
        # may differ from what the server generated, so the report says when it was needed.
        "output_tokens_from": ",".join(sorted({record.tokens_from for record in ok}, key=TOKEN_SOURCES.index)) or None,
        "n_output_tokens_from_tokenizer": sum(record.tokens_from == "tokenizer" for record in ok),
    }
    summary |= _percentile_columns(
        "ttft", [[r.ttft_ms] for r in ok if r.ttft_ms is not None], confidence, resamples, rng
    )
    summary |= _percentile_columns(
        "tpot", [[r.tpot_ms] for r in ok if r.tpot_ms is not None], confidence, resamples, rng
    )
    summary |= _percentile_columns("itl", [r.itl_ms for r in ok], confidence, resamples, rng)
    summary |= _percentile_columns("e2e", [[r.e2e_ms] for r in ok if r.e2e_ms is not None], confidence, resamples, rng)
    objectives = {key: value for key, value in slo.items() if value is not None}
    if objectives and records:
        good = sum(meets_slo(record, objectives) for record in records)
        summary |= {"goodput_per_s": good / duration_s, "slo_attainment": good / len(records)}
    else:
        summary |= {"goodput_per_s": None, "slo_attainment": None}
    return summary
