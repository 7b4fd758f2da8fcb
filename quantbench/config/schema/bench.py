"""The `bench` group's schema (conf/bench/): how long a job is timed, its budget, its isolation and
its repeats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class BenchConfig:
    warmup_iterations: int = 2
    min_iterations: int = 10
    min_seconds: float = 2.0
    max_iterations: int = 1000
    # The time budget of a job (seconds; null: none). The timed phase stops before an iteration
    # expected to end past max_seconds, whatever min_iterations and min_seconds ask, but never
    # before 3 iterations; warm-up ends after the first iteration that alone takes longer than
    # warmup_max_seconds. result.json records a cut (budget_cut, budget_cut_reason).
    max_seconds: Optional[float] = 300.0
    warmup_max_seconds: Optional[float] = 60.0
    max_new_tokens: int = 32
    max_input_tokens: int = 256
    seed: int = 0
    # process: each job in its own child process (its own peak memory; a crash or hang is a
    # failed row), forked from a warm worker that has imported torch once (quantbench/sweep/warm_worker.py);
    # spawn: each job in a freshly started interpreter; none: in the sweep's process, for
    # debugging with breakpoints. The environment
    # variable QUANTBENCH_ISOLATION changes the default (e.g. for a test suite of tiny jobs).
    isolation: str = "${oc.env:QUANTBENCH_ISOLATION,process}"
    timeout_s: Optional[float] = None  # an isolated job running longer is killed and recorded as failed
    # Other processes on the job's GPU (NVML, at the job's start; result.json other_gpu_processes):
    # warn logs them and runs the job; error skips it with them as the reason.
    exclusive_gpu: str = "warn"
    # Between-run variance: a sweep (-m) runs every configuration this many times, round-robin
    # (all configurations once, then all again), and the statistics take the repeat as the unit.
    # 3 for anything published; 1 measures only the noise within one job. Set by the sweep, not
    # by hand: `repeat` is each job's index (0 .. repeats-1), part of its identity for resume.
    repeats: int = 1
    repeat: int = 0
