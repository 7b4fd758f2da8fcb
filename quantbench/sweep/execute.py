"""What the Hydra app does with each job: reuse its result (resume), or run it, isolated or not."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from quantbench.jobdir import CommandLineKeys, JobResult, clear_previous_result, job_config, reusable_result

log = logging.getLogger("quantbench")

# process: a child process per job, forked from a warm worker; spawn: a fresh interpreter per job.
ISOLATION_MODES = ("process", "spawn", "none")


def command_line_keys(hydra_cfg: Any) -> CommandLineKeys:
    """What this job's command line set, from Hydra's record of the job (its task overrides)."""
    from hydra.core.global_hydra import GlobalHydra

    groups = set(hydra_cfg.runtime.choices)
    if GlobalHydra.instance().is_initialized():  # list-valued groups (quality=[ppl,kld]) are not in choices
        groups |= _top_groups(GlobalHydra.instance().config_loader())
    return CommandLineKeys.from_overrides(hydra_cfg.overrides.task, groups)


_listed: tuple[Any, frozenset[str]] | None = None  # (the config loader, its top-level groups)


def _top_groups(loader: Any) -> frozenset[str]:
    """The config tree's top-level groups, listed once per config loader (once per sweep, not per
    job: listing them copies the whole config repository)."""
    global _listed
    if _listed is None or _listed[0] is not loader:
        _listed = (loader, frozenset(loader.list_groups("")))
    return _listed[1]


def execute_job(cfg: DictConfig, job_dir: Path, command_line: CommandLineKeys | None = None) -> JobResult:
    """`command_line`: what this run's command line set, for reading results of older quantbench
    versions (quantbench.jobdir); None when unknown: a key an older result lacks then counts as changed."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    config = job_config(cfg)
    if cfg.get("resume", True):
        reused = reusable_result(job_dir, config, command_line)
        if reused is not None:
            log.info(
                "[resumed] model=%s precision=%s batch=%s: ok result of %s reused (same config); "
                "resume=false re-runs it",
                cfg.model.name,
                cfg.precision.name,
                cfg.batch,
                reused.finished_at,
            )
            return reused
    clear_previous_result(job_dir)
    isolation = str(cfg.bench.get("isolation", "process"))
    if isolation == "none":
        from quantbench.job.run import run_job

        return run_job(cfg, job_dir)
    from quantbench.sweep.isolation import run_isolated, write_failed_result

    if isolation not in ("process", "spawn"):
        reason = f"unknown bench.isolation '{isolation}'; choose one of: {', '.join(ISOLATION_MODES)}"
        return write_failed_result(cfg, config, job_dir, reason)
    timeout_s = cfg.bench.get("timeout_s")
    return run_isolated(cfg, config, job_dir, float(timeout_s) if timeout_s else None, fork=isolation == "process")
