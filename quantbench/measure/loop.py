"""The measurement loop: warm up, then time iterations until both a minimum count and a minimum
duration are reached. Samples are kept per iteration; statistics come from them, never from
an extrapolated single run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class IterationSample:
    iteration: int
    latency_ms: float  # end to end, one generate() call over the whole batch
    ttft_ms: float | None  # to the first generated token (prefill)
    tpot_ms: float | None  # per output token after the first
    n_generated_tokens: int
    n_input_tokens: int
    batch: int


Step = Callable[[int], IterationSample]
Tick = Callable[[str, int, int], None]  # (phase, done, planned)


def run_iterations(
    step: Step,
    *,
    warmup_iterations: int,
    min_iterations: int,
    min_seconds: float,
    max_iterations: int,
    tick: Tick | None = None,
) -> list[IterationSample]:
    tick = tick or (lambda phase, done, planned: None)
    for index in range(warmup_iterations):
        step(-1 - index)  # warm-up samples are discarded: allocator, kernels and caches settle
        tick("warmup", index + 1, warmup_iterations)
    samples: list[IterationSample] = []
    started = time.perf_counter()
    while len(samples) < max(1, min_iterations) or (time.perf_counter() - started) < min_seconds:
        if len(samples) >= max_iterations:
            break
        samples.append(step(len(samples)))
        tick("timed", len(samples), max(min_iterations, len(samples)))
    return samples


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def speed_metrics(samples: list[IterationSample]) -> dict[str, float | int]:
    """Throughput and latency over the timed iterations.

    qps and tokens_per_s divide totals by the summed latency of the timed iterations, so they are
    rates of back-to-back generate() calls; percentiles are over per-iteration batch latency
    (with static batching every request in a batch finishes with it).
    """
    latency_ms = np.array([sample.latency_ms for sample in samples], dtype=float)
    total_s = latency_ms.sum() / 1e3
    generated = sum(sample.n_generated_tokens for sample in samples)
    requests = sum(sample.batch for sample in samples)
    ttft = np.array([sample.ttft_ms for sample in samples if sample.ttft_ms is not None], dtype=float)
    tpot = np.array([sample.tpot_ms for sample in samples if sample.tpot_ms is not None], dtype=float)
    return {
        "qps": requests / total_s,
        "tokens_per_s": generated / total_s,
        "latency_mean_ms": float(latency_ms.mean()),
        "latency_std_ms": float(latency_ms.std(ddof=1)) if latency_ms.size > 1 else 0.0,
        "latency_p50_ms": _percentile(latency_ms, 50),
        "latency_p95_ms": _percentile(latency_ms, 95),
        "latency_p99_ms": _percentile(latency_ms, 99),
        "ttft_ms": float(np.median(ttft)) if ttft.size else None,
        "ttft_p95_ms": _percentile(ttft, 95) if ttft.size else None,
        "tpot_ms": float(np.median(tpot)) if tpot.size else None,
        "n_iterations": len(samples),
        "measured_s": float(total_s),
        "generated_tokens_per_iteration": samples[0].n_generated_tokens if samples else 0,
        "input_tokens_per_iteration": samples[0].n_input_tokens if samples else 0,
    }
