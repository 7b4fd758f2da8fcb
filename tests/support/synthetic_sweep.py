"""Synthetic sweep directories with known answers, for the analysis, report and recommend tests.

Each job directory holds what a real job writes (result.json, iterations.parquet and, for
quality, pubmedqa_predictions.parquet); the summary is built by the real collector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from quantbench.atomic import write_parquet_atomic
from quantbench.collect.sweeps import write_summary
from quantbench.jobdir import ITERATIONS_FILE, PREDICTIONS_FILE, JobResult, write_result
from quantbench.measure.kv_cache import DTYPE_BYTES, kv_shape_from_config
from quantbench.measure.loop import IterationSample, speed_metrics

ARCHITECTURE = {
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


@dataclass
class SyntheticPrecision:
    name: str
    speed: float  # throughput relative to fp32 (latency is divided by this)
    weight_memory_gb: float
    peak_memory_gb: float
    accuracy: float | None = None  # fraction of questions answered correctly
    kld_mean: float | None = None
    dtype: str = "float32"
    status: str = "ok"
    reason: str | None = None


DEFAULT_PRECISIONS = (
    SyntheticPrecision("fp32", 1.0, 0.50, 1.00, 0.60, 0.0, "float32"),
    SyntheticPrecision("bf16", 1.5, 0.25, 0.60, 0.59, 0.002, "bfloat16"),
    SyntheticPrecision("int8", 0.8, 0.14, 0.45, 0.58, 0.010),
    SyntheticPrecision("nf4", 0.6, 0.09, 0.40, 0.50, 0.050),
)


@dataclass
class SyntheticSweep:
    precisions: tuple[SyntheticPrecision, ...] = DEFAULT_PRECISIONS
    batches: tuple[int, ...] = (1, 8)
    iterations: int = 30
    base_latency_ms: float = 100.0  # fp32 at batch 1; grows with the batch as 1 + batch/8
    noise: float = 0.03  # log-normal spread of latency
    max_new_tokens: int = 8
    input_tokens_per_sample: int = 20
    price_per_hour_usd: float | None = 2.0
    memory_bandwidth_gb_s: float | None = 100.0
    hardware: str = "synthetic"  # the hardware config's name: sweeps of several machines differ here
    n_questions: int = 200
    device_type: str = "cpu"
    device_name: str = "Synthetic CPU"  # not this machine's CPU: its bandwidth is never measured
    seed: int = 0
    model: str = "synthetic"
    quantbench_version: str = "0.0.test"
    extra_metrics: dict = field(default_factory=dict)


def _predictions(precision: SyntheticPrecision, n_questions: int, seed: int) -> pl.DataFrame:
    """Per-question correctness with exactly round(accuracy * n) correct answers.

    Each precision's correct set is nested in the baseline-like order, so pairs disagree only
    where the accuracies differ: a known number of discordant questions.
    """
    order = np.random.default_rng(seed).permutation(n_questions)
    correct = np.zeros(n_questions, dtype=bool)
    correct[order[: int(round(precision.accuracy * n_questions))]] = True
    return pl.DataFrame({"question_id": [f"q{index}" for index in range(n_questions)], "correct": correct})


def write_sweep(directory: Path, spec: SyntheticSweep | None = None, first_job: int = 0) -> Path:
    """Write one job directory per precision x batch (numbered from `first_job`) and the summary."""
    spec = spec or SyntheticSweep()
    rng = np.random.default_rng(spec.seed)
    job_number = first_job
    for precision in spec.precisions:
        for batch in spec.batches:
            job_dir = directory / str(job_number)
            job_number += 1
            _write_job(job_dir, precision, batch, spec, rng)
    write_summary(directory)
    return directory


def _write_job(job_dir: Path, precision: SyntheticPrecision, batch: int, spec: SyntheticSweep, rng) -> None:
    latency_ms = spec.base_latency_ms * (1 + batch / 8) / precision.speed
    samples = []
    for iteration in range(spec.iterations):
        latency = latency_ms * float(rng.lognormal(0.0, spec.noise))
        ttft = latency * 0.2
        samples.append(
            IterationSample(
                iteration=iteration,
                latency_ms=latency,
                ttft_ms=ttft,
                tpot_ms=(latency - ttft) / (spec.max_new_tokens - 1),
                n_generated_tokens=batch * spec.max_new_tokens,
                n_input_tokens=batch * spec.input_tokens_per_sample,
                batch=batch,
            )
        )
    metrics: dict = {}
    if precision.status == "ok":
        write_parquet_atomic(job_dir / ITERATIONS_FILE, pl.DataFrame([vars(sample) for sample in samples]))
        metrics = {
            **speed_metrics(samples),
            "peak_memory_gb": precision.peak_memory_gb + 0.01 * batch,
            "peak_rss_gb": precision.peak_memory_gb + 0.01 * batch,
            "weight_memory_gb": precision.weight_memory_gb,
            "load_s": 1.0,
            "max_new_tokens": spec.max_new_tokens,
            # The facts a real job records (quantbench/measure/hardware_facts.py, kv_cache.py).
            "price_per_hour_usd": spec.price_per_hour_usd,
            "price_source": "hardware config (synthetic)" if spec.price_per_hour_usd is not None else "unknown",
            "memory_bandwidth_gb_s": spec.memory_bandwidth_gb_s,
            "bandwidth_source": "hardware config (synthetic)" if spec.memory_bandwidth_gb_s is not None else "unknown",
            "activation_dtype": precision.dtype,
            "kv_cache_bytes_per_token": kv_shape_from_config(ARCHITECTURE).bytes_per_token(
                DTYPE_BYTES[precision.dtype]
            ),
            **spec.extra_metrics,
        }
        if precision.accuracy is not None:
            metrics["pubmedqa_acc"] = precision.accuracy
            _predictions(precision, spec.n_questions, spec.seed).pipe(
                lambda frame: write_parquet_atomic(job_dir / PREDICTIONS_FILE, frame)
            )
        if precision.kld_mean is not None:
            metrics["kld_mean"] = precision.kld_mean
    config = {
        "model": {"name": spec.model, "family": "decoder", "source": "random_init", "architecture": ARCHITECTURE},
        "precision": {"name": precision.name, "backend": precision.name, "dtype": precision.dtype},
        "hardware": {
            "name": spec.hardware,
            "device": "cpu",
            "price_per_hour_usd": spec.price_per_hour_usd,
            "memory_bandwidth_gb_s": spec.memory_bandwidth_gb_s,
        },
        "batch": batch,
        "cache_dir": str(job_dir.parent / "cache"),
    }
    write_result(
        job_dir,
        JobResult(
            status=precision.status,
            reason=precision.reason,
            identity={
                "model": spec.model,
                "precision": precision.name,
                "backend": precision.name,
                "family": "decoder",
                "batch": batch,
                "hardware": spec.hardware,
                "dataset": "builtin",
                "device": spec.device_name,
            },
            config=config,
            config_hash=f"{precision.name}-{batch}",
            environment={
                "device_type": spec.device_type,
                "device_name": spec.device_name,
                "cpu_count": 2,
                "versions": {"torch": "test", "quantbench": spec.quantbench_version},
                "python": "3.x",
            },
            metrics=metrics,
        ),
    )
