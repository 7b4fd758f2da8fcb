"""One job: resolve the plugins, load the model, measure, write the result.

Hydra's basic sweeper aborts the whole sweep when a job raises, so `run_job` never lets an
expected failure escape: a combination that cannot run here is a `skipped` row, anything that
breaks while running (out of memory, a plugin that raises, a malformed file) is a `failed` row,
both with a one-line reason. Only an interrupt from the user stops the sweep.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from omegaconf import DictConfig

from quantbench.atomic import write_parquet_atomic
from quantbench.device import Device, resolve_device
from quantbench.errors import JobSkipped
from quantbench.job_setup import prepare_job
from quantbench.jobdir import ITERATIONS_FILE, JobResult, config_hash, identity_of, job_config, write_result, write_traceback
from quantbench.logs import quiet_third_party_chatter, report_repeated_warnings
from quantbench.measure.environment import capture_environment
from quantbench.measure.gpu_processes import check_exclusive_gpu
from quantbench.measure.kv_cache import activation_dtype, kv_cache_bytes_per_token
from quantbench.measure.instrumented import run_instrumented
from quantbench.measure.loop import IterationSample, speed_metrics
from quantbench.measure.memory import GB, MemoryTracker, release_memory, weight_memory_bytes
from quantbench.measure.linear_kernel import linear_kernel
from quantbench.measure.weight_bits import bits_per_weight
from quantbench.measure.phases import import_model_code, start_job, startup_s, without_quantize_s
from quantbench.measure.timing import DeviceClock, FirstTokenClock
from quantbench.progress import JobProgress
from quantbench.quality import evaluate_quality
from quantbench.registry import first_line
from quantbench.scenarios import measure_scenario
from quantbench.serve.summary import summary_line as serve_summary_line
from quantbench.threads import set_torch_threads

log = logging.getLogger("quantbench")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_job(cfg: DictConfig, job_dir: Path, progress: JobProgress | None = None, spawned_at: float | None = None) -> JobResult:
    """`spawned_at`: when the parent spawned this job's process (time.time()), for its startup_s."""
    start_job(spawned_at)
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    started = _now()
    config = job_config(cfg)
    device: Device | None = None
    metrics: dict[str, Any] = {}
    outputs: list[str] = []
    status, reason = "ok", None
    quiet_third_party_chatter()
    progress = progress or JobProgress(f"{cfg.model.name} {cfg.precision.name} b{cfg.batch}")
    try:
        with progress:
            device = resolve_device(cfg.hardware.device)
            # Before this process touches the GPU: who else is on it (bench.exclusive_gpu decides).
            shared_gpu = check_exclusive_gpu(str(cfg.bench.get("exclusive_gpu", "warn")), device.type, device.index)
            # scenario=offline: measure_job below; scenario=serve: load levels against a server.
            metrics, outputs = measure_scenario(cfg, device, job_dir, progress, offline=measure_job)
            metrics = {**metrics, **shared_gpu}
    except JobSkipped as error:
        status, reason = "skipped", str(error)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - every other failure becomes a row, never a dead sweep
        status, reason = "failed", _failure_reason(error)
        log.debug("job failed:\n%s", traceback.format_exc())
        write_traceback(job_dir, traceback.format_exc())
    finally:
        release_memory()
        report_repeated_warnings(log)
    result = JobResult(
        status=status,
        reason=reason,
        identity=identity_of(cfg, device),
        config=config,
        config_hash=config_hash(config),
        environment=capture_environment(device),
        metrics=metrics,
        started_at=started,
        finished_at=_now(),
        sample_output=outputs,
    )
    write_result(job_dir, result)
    log.info(_one_line(result))
    return result


def _failure_reason(error: BaseException) -> str:
    if type(error).__name__ == "OutOfMemoryError":
        return f"out of memory: {first_line(error)}"
    return f"{type(error).__name__}: {first_line(error)}"


def _one_line(result: JobResult) -> str:
    who = " ".join(f"{key}={result.identity[key]}" for key in ("model", "precision", "batch"))
    if result.status != "ok":
        return f"[{result.status}] {who}: {result.reason}"
    m = result.metrics
    if m.get("scenario") == "serve":
        return f"[ok] {who}: {serve_summary_line(m)}"
    return (
        f"[ok] {who}: {m['tokens_per_s']:.1f} tok/s, {m['qps']:.2f} samples/s, "
        f"p50 {m['latency_p50_ms']:.1f} ms, peak {m['peak_memory_gb']:.2f} GB"
    )


def measure_job(
    cfg: DictConfig, device: Device, job_dir: Path, progress: JobProgress
) -> tuple[dict[str, Any], list[str]]:
    batch_size = int(cfg.batch)
    if batch_size < 1:
        raise JobSkipped(f"batch must be at least 1, got {batch_size}")
    setup = prepare_job(cfg, device, progress)
    family, backend, dataset, spec = setup.family, setup.backend, setup.dataset, setup.spec

    import torch

    torch.manual_seed(int(cfg.bench.seed))
    # Set, not only recorded: llama.cpp jobs run on the same hardware.threads (quantbench/threads.py).
    threads = set_torch_threads(cfg.hardware)
    clock = DeviceClock(device.type)
    memory = MemoryTracker(device.type, device.index)
    memory.reset()
    # load_s is the same kind of number in every job (quantbench/measure/phases.py): the model's
    # code is imported first, one-time materialisation and quantization are their own phases.
    import_model_code(spec)
    phases = {"startup_s": startup_s(spec.materialise_s), "materialise_s": spec.materialise_s}
    load_started = clock.now()
    with progress.step(f"loading {cfg.model.name} as {cfg.precision.name} ({backend.name} on {device.torch_device})"):
        loaded = backend.load(setup.load_request(cfg, device))
    load_s = without_quantize_s(clock.now() - load_started, loaded.metrics)

    # The same batch every iteration: each timed iteration does identical work.
    samples = [dataset[index % len(dataset)] for index in range(batch_size)]
    prepared = family.prepare_batch(
        samples,
        loaded.processor,
        device=device.torch_device,
        max_input_tokens=int(cfg.bench.max_input_tokens),
        chat_template=bool(cfg.dataset.chat_template),
    )
    max_new_tokens = int(cfg.bench.max_new_tokens)
    first_token = FirstTokenClock(clock)
    last_generated: list[Any] = []

    def step(iteration: int) -> IterationSample:
        first_token.reset()
        started = clock.now()
        generated = family.generate(loaded.model, prepared, max_new_tokens=max_new_tokens, clock=first_token)
        finished = clock.now()
        last_generated[:] = [generated]
        latency_ms = (finished - started) * 1e3
        ttft_ms = None if first_token.first_token_at is None else (first_token.first_token_at - started) * 1e3
        per_sample_tokens = generated.new_tokens.shape[1]
        tpot_ms = None
        if ttft_ms is not None and per_sample_tokens > 1:
            tpot_ms = (latency_ms - ttft_ms) / (per_sample_tokens - 1)
        return IterationSample(
            iteration=iteration,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            tpot_ms=tpot_ms,
            n_generated_tokens=generated.n_generated_tokens,
            n_input_tokens=prepared.n_input_tokens,
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
        "weight_memory_gb": weight_memory_bytes(loaded.model) / GB,
        # The one definition of how much the weights shrank (quantbench/measure/weight_bits.py),
        # and what ran the linear layers; a backend's own `kernel` (gptqmodel's pick) wins below.
        "bits_per_weight": bits_per_weight(loaded.model),
        "kernel": linear_kernel(loaded.model),
        # What the roofline needs, read from the model as loaded (quantbench/measure/kv_cache.py).
        "activation_dtype": activation_dtype(loaded.model),
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(loaded.model),
        "load_s": load_s,
        **phases,
        "max_new_tokens": max_new_tokens,
        "threads": threads,
        **setup.hardware.metrics(),  # price, bandwidth, peak compute and where each came from
        "model_note": cfg.model.note,
        **prepared.extra.get("metrics", {}),  # family facts, e.g. image tokens per sample
        **loaded.metrics,
    }
    # Quality (quality=[ppl,kld,pubmedqa]) on the model already loaded, after every speed number.
    metrics.update(evaluate_quality(cfg, loaded, family, spec, device, job_dir, progress))
    outputs = family.decode(loaded.processor, last_generated[0])[:4] if last_generated else []
    return metrics, outputs
