"""scenario=offline: one static batch generated again and again in quantbench's own process.

The one offline measurement of every engine. This module owns what is the same for all of them:
the batch (the first `batch` dataset samples, the same every iteration), the timed step and the loop
around it with energy and telemetry (quantbench/measure/instrumented.py), the iteration samples and
`iterations.parquet`, the speed, memory, energy and phase metrics, and the quality call after them.
The job's engine supplies only what differs through its `OfflineRunner`
(quantbench/engines/offline.py): loading the weights, generating the batch, its own facts and its
own quality scorer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import polars as pl

from quantbench.atomic import write_parquet_atomic
from quantbench.engines.offline import Generation, OfflineJob, OfflineRunner
from quantbench.errors import JobSkipped
from quantbench.jobdir import ITERATIONS_FILE
from quantbench.measure.instrumented import run_instrumented
from quantbench.measure.loop import IterationSample, speed_metrics
from quantbench.measure.memory import MemoryTracker
from quantbench.measure.phases import startup_s, without_quantize_s
from quantbench.measure.timing import DeviceClock, FirstTokenClock
from quantbench.quality import evaluate_quality, selected_metrics
from quantbench.runtime.threads import set_torch_threads
from quantbench.scenarios.setup import JobSetup, prepare_job

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.runtime.device import Device
    from quantbench.runtime.progress import JobProgress


def measure_offline(
    cfg: DictConfig, device: Device, job_dir: Path, progress: JobProgress
) -> tuple[dict[str, Any], list[str]]:
    """The job's metrics and sample outputs, measured on the job's engine (engine=auto: the
    precision's own, llama.cpp for GGUF types, else transformers)."""
    from quantbench.config import registry
    from quantbench.engines.base import DEFAULT_ENGINE, check_precision_engine, resolve_engine

    if cfg.get("engine") is None:  # a config from before engines existed: the transformers path
        return run_offline(cfg, device, job_dir, progress, registry.engines().get(DEFAULT_ENGINE))
    engine_name, engine = resolve_engine(cfg)
    if not engine.offline:
        raise JobSkipped(
            f"engine {engine_name} only serves; use scenario=serve, or engine=auto for the offline measurement"
        )
    check_precision_engine(cfg, engine_name)
    metrics, outputs = run_offline(cfg, device, job_dir, progress, engine)
    # Every offline row names its engine: a sweep across engines labels its rows "precision · engine".
    return {"engine": engine_name, **metrics}, outputs


def run_offline(
    cfg: DictConfig, device: Device, job_dir: Path, progress: JobProgress, engine: Any
) -> tuple[dict[str, Any], list[str]]:
    """Set up the job, make the engine's runner and measure it."""
    batch_size = int(cfg.batch)
    if batch_size < 1:
        raise JobSkipped(f"batch must be at least 1, got {batch_size}")
    setup = prepare_job(cfg, device, progress)
    # Set, not only recorded: every engine runs on hardware.threads (quantbench/runtime/threads.py).
    threads = set_torch_threads(cfg.hardware)
    memory = MemoryTracker(device.type, device.index)
    memory.reset()
    # Making the runner imports the engine's and the model's code, so load_s is the same kind of
    # number in every job (quantbench/measure/phases.py).
    job = OfflineJob(cfg, device, setup.family, setup.backend, setup.load_request(cfg, device), threads)
    runner = _runner(engine, job)
    try:
        return _measure(runner, job, setup, memory, job_dir, progress)
    finally:
        runner.close()


def _runner(engine: Any, job: OfflineJob) -> OfflineRunner:
    """The engine's runner; quantbench's transformers runner for an offline engine that brings none
    of its own (a plugin's engine whose weights transformers loads)."""
    make = getattr(engine, "offline_runner", None)
    if make is None:
        from quantbench.engines.transformers_offline import TransformersRunner

        return TransformersRunner(job)
    return make(job)


def _measure(
    runner: OfflineRunner, job: OfflineJob, setup: JobSetup, memory: MemoryTracker, job_dir: Path, progress: JobProgress
) -> tuple[dict[str, Any], list[str]]:
    cfg, device = job.cfg, job.device
    clock = DeviceClock(runner.clock_device)
    # The same batch every iteration: each timed iteration does identical work.
    batch_size = int(cfg.batch)
    samples = [setup.dataset[index % len(setup.dataset)] for index in range(batch_size)]
    # One-time materialisation and quantization are their own phases, not part of load_s.
    phases = {"startup_s": startup_s(setup.spec.materialise_s), "materialise_s": setup.spec.materialise_s}
    load_started = clock.now()
    with progress.long_step(f"loading {cfg.model.name} as {cfg.precision.name} ({runner.loading})"):
        loaded = runner.load(samples)
    load_s = without_quantize_s(clock.now() - load_started, loaded.metrics)
    runner.prepare(samples)

    max_new_tokens = int(cfg.bench.max_new_tokens)
    first_token = FirstTokenClock(clock)
    last: list[Generation] = []

    def step(iteration: int) -> IterationSample:
        first_token.reset()
        started = clock.now()
        generation = runner.generate(max_new_tokens, first_token)
        finished = clock.now()
        last[:] = [generation]
        latency_ms = (finished - started) * 1e3
        ttft_ms = None if first_token.first_token_at is None else (first_token.first_token_at - started) * 1e3
        tpot_ms = None
        if ttft_ms is not None and generation.new_tokens_per_prompt > 1:
            tpot_ms = (latency_ms - ttft_ms) / (generation.new_tokens_per_prompt - 1)
        return IterationSample(
            iteration=iteration,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            tpot_ms=tpot_ms,
            n_generated_tokens=generation.n_generated_tokens,
            n_input_tokens=generation.n_input_tokens,
            batch=batch_size,
        )

    # Energy around every timed iteration, telemetry through the phases (quantbench/measure/instrumented.py).
    run, instruments = run_instrumented(step, cfg.bench, job_dir, device.type, device.index, progress.tick)
    timed = run.samples
    write_parquet_atomic(job_dir / ITERATIONS_FILE, pl.DataFrame([vars(sample) for sample in timed]))

    metrics: dict[str, Any] = {
        **speed_metrics(timed),
        **instruments,  # energy_j, energy_per_token_j, ..., telemetry_samples, clocks_throttled
        **run.budget_metrics(),  # budget_cut, budget_cut_reason, warmup_iterations_done
        **memory.peaks(),
        **runner.facts(
            timed
        ),  # weight_memory_gb, bits_per_weight, kernel, activation_dtype, the engine's rates and build
        "load_s": load_s,
        **phases,
        "max_new_tokens": max_new_tokens,
        "threads": job.threads,
        **setup.hardware.metrics(),  # price, bandwidth, peak compute and where each came from
        "model_note": cfg.model.note,
        **loaded.metrics,  # the backend's own facts last: its `kernel` or bits_per_weight wins
    }
    if selected_metrics(cfg):
        # Quality (quality=[ppl,kld,pubmedqa]) on the model already loaded, after every speed number.
        def evaluate(scorer: Any, observers: Sequence[Any] = ()) -> dict[str, Any]:
            return evaluate_quality(
                cfg, loaded, setup.family, setup.spec, device, job_dir, progress, scorer=scorer, observers=observers
            )

        metrics.update(runner.quality(evaluate))
    outputs = runner.decode(last[0]) if last else []
    return metrics, outputs
