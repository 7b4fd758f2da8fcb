"""The measurement loop with its instruments: energy read around every timed iteration and
telemetry sampled through warm-up and timed phase. The offline scenario (quantbench.scenarios.offline),
which times every engine's iterations, calls this instead of `run_bench`, so the instruments are wired once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantbench.measure.energy import EnergyMeter
from quantbench.measure.loop import IterationRun, IterationSample, Step, Tick, run_bench
from quantbench.measure.telemetry import TelemetrySampler


def run_instrumented(
    step: Step, bench: Any, job_dir: Path, device_type: str, device_index: int | None, tick: Tick
) -> tuple[IterationRun, dict[str, Any]]:
    """`run_bench(step, bench, tick)`, each iteration's joules in its sample's `energy_j`, the
    telemetry written to the job directory; the run and its energy and telemetry metrics.

    The energy counter is read right before and after each step: the step opens and closes its
    timed region with a device synchronisation, so the window holds its device work and no other
    iteration's. A read (about a millisecond on NVML) is outside the step's own timing."""
    energy = EnergyMeter(device_type, device_index)
    telemetry = TelemetrySampler(device_type, device_index)
    telemetry.phase = "warm-up"

    def measured(iteration: int) -> IterationSample:
        telemetry.phase = "warm-up" if iteration < 0 else "timed"
        energy.before()
        sample = step(iteration)
        sample.energy_j = energy.after()
        return sample

    with telemetry:
        run = run_bench(measured, bench, tick)
    telemetry.write(job_dir)
    seconds = sum(sample.latency_ms for sample in run.samples) / 1e3
    tokens = sum(sample.n_generated_tokens for sample in run.samples)
    return run, {**energy.metrics([sample.energy_j for sample in run.samples], seconds, tokens), **telemetry.summary()}
