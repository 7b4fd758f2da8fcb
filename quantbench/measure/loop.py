"""The measurement loop: warm up, then time iterations until both a minimum count and a minimum
duration are reached, within a time budget. Samples are kept per iteration; statistics come from
them, never from an extrapolated single run."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from quantbench.measure.percentiles import percentile_metrics

log = logging.getLogger("quantbench")

# The time budget (bench.max_seconds) never leaves fewer timed iterations: fewer say little about spread.
MIN_BUDGET_ITERATIONS = 3


@dataclass
class IterationSample:
    iteration: int
    latency_ms: float  # end to end, one generate() call over the whole batch
    ttft_ms: float | None  # to the first generated token (prefill)
    tpot_ms: float | None  # per output token after the first
    n_generated_tokens: int
    n_input_tokens: int
    batch: int
    energy_j: float | None = None  # read around the timed region (quantbench.measure.energy); None: no counter


Step = Callable[[int], IterationSample]
# (phase, iterations done, iterations planned, ~seconds left in warm-up and timed phases, None: unknown)
Tick = Callable[[str, int, int, float | None], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class TimedPlan:
    """When the timed phase stops: once it has both min_iterations and min_seconds; at
    max_iterations; or before an iteration expected (at the mean pace so far) to end past
    max_seconds, but never before MIN_BUDGET_ITERATIONS. Only that last stop is a budget cut."""

    min_iterations: int
    min_seconds: float
    max_iterations: int
    max_seconds: float = math.inf

    def stop(self, done: int, elapsed_s: float) -> str | None:
        """Why the phase stops after `done` iterations in `elapsed_s`: "max_iterations",
        "complete" or "budget"; None while it goes on."""
        if done >= self.max_iterations:
            return "max_iterations"
        if done >= max(1, self.min_iterations) and elapsed_s >= self.min_seconds:
            return "complete"
        if done >= MIN_BUDGET_ITERATIONS and elapsed_s + elapsed_s / done > self.max_seconds:
            return "budget"
        return None

    def expected_iterations(self, seconds_per_iteration: float) -> int:
        """The iterations `stop` allows at a steady pace: the progress estimate of the phase."""
        wanted = max(1, self.min_iterations)
        if seconds_per_iteration > 0:
            wanted = max(wanted, math.ceil(self.min_seconds / seconds_per_iteration))
            if math.isfinite(self.max_seconds):
                wanted = min(wanted, max(MIN_BUDGET_ITERATIONS, math.floor(self.max_seconds / seconds_per_iteration)))
        return min(wanted, self.max_iterations)


@dataclass
class IterationRun:
    samples: list[IterationSample]  # the timed iterations
    warmup_iterations_done: int
    budget_cuts: list[str]  # why the time budget ended a phase early; one line per phase it cut
    warmup_s: float = 0.0  # wall seconds of the warm-up phase (quantbench.measure.phases)

    def budget_metrics(self) -> dict[str, Any]:
        """What result.json records about the budget and the warm-up, for every job (cut or not)."""
        return {
            "budget_cut": bool(self.budget_cuts),
            "budget_cut_reason": "; ".join(self.budget_cuts) or None,
            "warmup_iterations_done": self.warmup_iterations_done,
            "warmup_s": self.warmup_s,
        }


def _no_tick(phase: str, done: int, planned: int, remaining_s: float | None) -> None:
    return None


def run_iterations(
    step: Step,
    *,
    warmup_iterations: int,
    min_iterations: int,
    min_seconds: float,
    max_iterations: int,
    max_seconds: float = math.inf,
    warmup_max_seconds: float = math.inf,
    tick: Tick = _no_tick,
    clock: Clock = time.perf_counter,
) -> IterationRun:
    """Warm up (at most `warmup_iterations`; after the first that alone takes longer than
    `warmup_max_seconds`, no more), then time iterations as `TimedPlan` says."""
    plan = TimedPlan(min_iterations, min_seconds, max_iterations, max_seconds)
    cuts: list[str] = []
    pace_s: float | None = None  # seconds of the last warm-up iteration: the first guess of the timed pace
    warmed = 0
    warmup_started = clock()
    if warmup_iterations > 0:
        tick("warm-up", 0, warmup_iterations, None)
    while warmed < warmup_iterations:
        started = clock()
        step(-1 - warmed)  # warm-up samples are discarded: allocator, kernels and caches settle
        pace_s = clock() - started
        warmed += 1
        cut = warmed < warmup_iterations and pace_s > warmup_max_seconds
        left = 0 if cut else warmup_iterations - warmed
        tick("warm-up", warmed, warmed + left, (left + plan.expected_iterations(pace_s)) * pace_s)
        if cut:
            cuts.append(
                f"warm-up stopped by bench.warmup_max_seconds={warmup_max_seconds:g} after {warmed} of "
                f"{warmup_iterations} iterations (the last took {pace_s:.1f} s)"
            )
            log.info(cuts[-1])
            break

    warmup_s = clock() - warmup_started
    samples: list[IterationSample] = []
    planned = plan.expected_iterations(pace_s or 0.0)
    tick("timed", 0, planned, planned * pace_s if pace_s else None)
    started = clock()
    while (stop := plan.stop(len(samples), clock() - started)) is None:
        samples.append(step(len(samples)))
        pace_s = (clock() - started) / len(samples)
        planned = max(plan.expected_iterations(pace_s), len(samples))
        tick("timed", len(samples), planned, (planned - len(samples)) * pace_s)
    if stop == "budget":
        cuts.append(
            f"timed phase stopped by bench.max_seconds={max_seconds:g} after {len(samples)} iterations "
            f"({clock() - started:.0f} s; bench.min_iterations={min_iterations}, bench.min_seconds={min_seconds:g})"
        )
        log.info(cuts[-1])
    return IterationRun(samples, warmed, cuts, warmup_s)


def run_bench(step: Step, bench: Any, tick: Tick = _no_tick) -> IterationRun:
    """`run_iterations` as the `bench` config node says (a null budget is none): what a job calls."""

    def seconds(value: Any) -> float:
        return math.inf if value is None else float(value)

    return run_iterations(
        step,
        warmup_iterations=int(bench.warmup_iterations),
        min_iterations=int(bench.min_iterations),
        min_seconds=float(bench.min_seconds),
        max_iterations=int(bench.max_iterations),
        max_seconds=seconds(bench.max_seconds),
        warmup_max_seconds=seconds(bench.warmup_max_seconds),
        tick=tick,
    )


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
        # Each percentile with its sample count and, for p95/p99, its bootstrap interval.
        **percentile_metrics("latency", latency_ms, (50, 95, 99)),
        **percentile_metrics("ttft", ttft, (50, 95)),
        **percentile_metrics("tpot", tpot, (50,)),
        "n_iterations": len(samples),
        "measured_s": float(total_s),
        "generated_tokens_per_iteration": samples[0].n_generated_tokens if samples else 0,
        "input_tokens_per_iteration": samples[0].n_input_tokens if samples else 0,
    }
