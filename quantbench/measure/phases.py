"""The phases of a job's wall time, each measured once and named the same in every job and engine.

    startup_s      before the load, less materialisation: for an isolated job from the moment the
                   parent spawned its process (imports included) to the start of the load; in
                   the sweep's process (bench.isolation=none) from the job's start, so only the
                   imports and set-up this job triggers itself (near 0 after an earlier job)
    materialise_s  building the model's on-disk form once (a random-init model, a GGUF file
                   dequantized to safetensors); 0 when the cache had it
    quantize_s     making a quantized cache entry once (GPTQ/AWQ checkpoint, GGUF file); 0 on a hit
    load_s         the on-disk form (checkpoint, quantized cache entry, GGUF file) into memory on
                   the device, with the model's code already imported: the same in the job that
                   materialised the model and in every later one
    warmup_s       the warm-up iterations
    measured_s     the timed iterations (quantbench.measure.loop.speed_metrics)

Their sum is the job's wall time up to the end of the timed phase, less the prompt preparation.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from quantbench.models.source import ModelSpec

# Set by the parent of an isolated job right before it spawns the child: time.time() as text.
SPAWNED_AT_ENV = "QUANTBENCH_SPAWNED_AT"

_job_started_at: float | None = None  # perf_counter() at the start of this process's current job
_process_startup_s = 0.0  # an isolated job's spawn to its start


def spawn_environment(environment: dict[str, str]) -> dict[str, str]:
    """`environment` with the spawn time a child's startup_s starts from."""
    return {**environment, SPAWNED_AT_ENV: repr(time.time())}


def take_spawn_time(environment: os._Environ[str] | dict[str, str] = os.environ) -> float | None:
    """The spawn time the parent left, removed so that the job's own subprocesses do not inherit it."""
    value = environment.pop(SPAWNED_AT_ENV, None)
    try:
        return float(value) if value else None
    except ValueError:
        return None


def start_job(spawned_at: float | None = None) -> None:
    """Mark the start of a job in this process; `spawned_at`: when its process was spawned."""
    global _job_started_at, _process_startup_s
    _job_started_at = time.perf_counter()
    _process_startup_s = max(0.0, time.time() - spawned_at) if spawned_at else 0.0


def startup_s(materialise_s: float = 0.0) -> float:
    """Seconds from the job's (or its process's) start to now, less `materialise_s`: called right
    before the load."""
    since_job = 0.0 if _job_started_at is None else time.perf_counter() - _job_started_at
    return max(0.0, _process_startup_s + since_job - materialise_s)


def import_model_code(spec: ModelSpec) -> None:
    """Import the libraries and the model's own modelling code before the load is timed, so that a
    process's first load does not carry imports another job's load does not (the job that
    materialised the model has them imported already)."""
    import torch  # noqa: F401 - the import itself is the point
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(
            spec.load_path, revision=spec.revision, trust_remote_code=bool(spec.config.get("trust_remote_code", False))
        )
    except Exception:
        return
    model_type = str(getattr(config, "model_type", "") or "").replace("-", "_")
    try:
        importlib.import_module(f"transformers.models.{model_type}.modeling_{model_type}")
    except Exception:
        pass
    try:
        # transformers compiles its table of checkpoint renamings (~1000 regular expressions, about
        # 0.3 s) at a process's first from_pretrained: once per process, not part of any load.
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping(model_type)
    except Exception:
        pass


def without_quantize_s(elapsed_s: float, metrics: Mapping[str, object]) -> float:
    """A load's seconds less the one-time quantization it included (a cache miss), never below 0."""
    quantize = metrics.get("quantize_s")
    return max(0.0, elapsed_s - (float(quantize) if isinstance(quantize, (int, float)) else 0.0))
