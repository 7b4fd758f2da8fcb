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

from omegaconf import DictConfig

from quantbench.config.registry import first_line
from quantbench.errors import JobSkipped
from quantbench.jobdir import JobResult, config_hash, identity_of, job_config, write_result, write_traceback
from quantbench.loadgen.summary import summary_line as serve_summary_line
from quantbench.measure.environment import capture_environment
from quantbench.measure.gpu_processes import check_exclusive_gpu
from quantbench.measure.memory import release_memory
from quantbench.measure.phases import start_job
from quantbench.runtime.device import Device, resolve_device
from quantbench.runtime.logs import quiet_third_party_chatter, report_repeated_warnings
from quantbench.runtime.progress import JobProgress
from quantbench.scenarios import measure_scenario

log = logging.getLogger("quantbench")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_job(
    cfg: DictConfig, job_dir: Path, progress: JobProgress | None = None, spawned_at: float | None = None
) -> JobResult:
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
            # scenario=offline: the engine's runner timed (quantbench/scenarios/offline.py);
            # scenario=serve: load levels against a server.
            metrics, outputs = measure_scenario(cfg, device, job_dir, progress)
            metrics = {**metrics, **shared_gpu}
    except JobSkipped as error:
        status, reason = "skipped", str(error)
    except KeyboardInterrupt:
        raise
    except Exception as error:
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
