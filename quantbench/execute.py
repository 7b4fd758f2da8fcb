"""What the Hydra app does with each job: reuse its result (resume), or run it, isolated or not."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from quantbench.results import JobResult
from quantbench.resume import clear_previous_result, config_hash, job_config, reusable_result

log = logging.getLogger("quantbench")

ISOLATION_MODES = ("process", "none")


def execute_job(cfg: DictConfig, job_dir: Path) -> JobResult:
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    config = job_config(cfg)
    if cfg.get("resume", True):
        reused = reusable_result(job_dir, config_hash(config))
        if reused is not None:
            log.info(
                "[resumed] model=%s precision=%s batch=%s: ok result of %s reused (same config); resume=false re-runs it",
                cfg.model.name, cfg.precision.name, cfg.batch, reused.finished_at,
            )
            return reused
    clear_previous_result(job_dir)
    isolation = str(cfg.bench.get("isolation", "process"))
    if isolation == "none":
        from quantbench.job import run_job

        return run_job(cfg, job_dir)
    from quantbench.isolation import run_isolated, write_failed_result

    if isolation != "process":
        reason = f"unknown bench.isolation '{isolation}'; choose one of: {', '.join(ISOLATION_MODES)}"
        return write_failed_result(cfg, config, job_dir, reason)
    timeout_s = cfg.bench.get("timeout_s")
    return run_isolated(cfg, config, job_dir, float(timeout_s) if timeout_s else None)
