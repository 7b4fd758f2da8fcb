"""What a sweep will cost, said before its first job, and where each job stands in it.

Before launching, the sweep logs one line: how many jobs, how many a resume reuses, how many run,
and the estimated duration from earlier runs in the cache (quantbench.sweep.durations), or
"unknown". It writes the plan (`SWEEP_PLAN_FILE`) into the sweep directory for jobs that run in
other processes (SLURM). Each job's first line then says its place ("job 6/8, 2nd of 3 to run") and
the time left: with jobs one after another (Hydra's basic launcher, in this process) the estimates of
the jobs still to run, scaled by how long this sweep's jobs took against their estimates; with jobs
in parallel (anywhere else) the job's own estimate. A job that finishes `ok` adds its duration to the
cache's history and leaves its reuse record (quantbench.sweep.plan).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from quantbench.atomic import write_json_atomic
from quantbench.runtime.progress import format_duration
from quantbench.sweep.durations import duration_key, estimated_duration_s, record_duration
from quantbench.sweep.plan import SweepPlan, write_reuse_record

log = logging.getLogger("quantbench")

SWEEP_PLAN_FILE = "sweep_plan.json"  # in the sweep directory: the plan, for jobs in other processes


@dataclass
class SweepCost:
    """A sweep's plan with each job's estimated duration, and what this process measured of it."""

    sweep_dir: str
    total: int
    to_run: list[int]
    reused: int
    estimates_s: dict[int, float]
    fingerprint: str | None = None
    sequential: bool = False  # jobs one after another, in this process
    measured: dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "to_run": self.to_run,
            "reused": self.reused,
            "estimates_s": {str(number): seconds for number, seconds in self.estimates_s.items()},
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, sweep_dir: str, data: dict[str, Any]) -> SweepCost:
        estimates = {int(number): float(seconds) for number, seconds in (data.get("estimates_s") or {}).items()}
        return cls(
            sweep_dir, int(data["total"]), list(data["to_run"]), int(data["reused"]), estimates, data.get("fingerprint")
        )

    def time_left_s(self, number: int) -> float | None:
        """The time left in the sweep from the start of job `number`, or None when a job still to
        run has no estimate and nothing was measured yet to stand in for it."""
        if not self.sequential:
            return self.estimates_s.get(number)
        remaining = self.to_run[self.to_run.index(number) :] if number in self.to_run else [number]
        estimated = [job for job in self.measured if job in self.estimates_s]
        scale = (
            sum(self.measured[job] for job in estimated) / sum(self.estimates_s[job] for job in estimated)
            if estimated and sum(self.estimates_s[job] for job in estimated) > 0
            else 1.0
        )
        stand_in = sum(self.measured.values()) / len(self.measured) if self.measured else None
        left = 0.0
        for job in remaining:
            if job in self.estimates_s:
                left += self.estimates_s[job] * scale
            elif stand_in is not None:
                left += stand_in
            else:
                return None
        return left


_current: SweepCost | None = None  # the sweep this process plans and runs (Hydra's basic launcher)


def estimate_jobs(sweep_config: DictConfig, jobs: Sequence[Sequence[str]], numbers: Sequence[int]) -> dict[int, float]:
    """Each job's estimated duration from the cache's history (jobs without history are absent)."""
    choices = sweep_config.hydra.runtime.choices
    cache_dir = str(sweep_config.get("cache_dir", "~/.cache/quantbench"))
    by_key: dict[str, float | None] = {}
    estimates = {}
    for number in numbers:
        key = duration_key(choices, jobs[number], sweep_config.get("batch"))
        text = json.dumps(key, sort_keys=True)
        if text not in by_key:
            by_key[text] = estimated_duration_s(cache_dir, key)
        if by_key[text] is not None:
            estimates[number] = by_key[text]
    return estimates


def announce_sweep(
    sweep_config: DictConfig, jobs: Sequence[Sequence[str]], plan: SweepPlan, sequential: bool, launching: bool = True
) -> SweepCost:
    """The sweep's one line before its first job; the plan file for its jobs (`launching`: not for a
    dry run, which must not change what the jobs of a sweep still running there read)."""
    global _current
    sweep_dir = str(sweep_config.hydra.sweep.dir)
    cost = SweepCost(
        sweep_dir,
        plan.total,
        list(plan.to_run),
        len(plan.reused),
        estimate_jobs(sweep_config, jobs, plan.to_run),
        plan.fingerprint,
        sequential,
    )
    log.info(cost_line(cost, plan.composed))
    if launching:
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(sweep_dir) / SWEEP_PLAN_FILE, cost.to_json())
        _current = cost
    return cost


def cost_line(cost: SweepCost, composed: int = 0) -> str:
    text = f"sweep of {cost.total} job{'s' if cost.total != 1 else ''}: "
    if cost.reused:
        text += f"{cost.reused} reused (an ok result of the same config), {len(cost.to_run)} to run"
    else:
        text += f"{len(cost.to_run)} to run"
    if composed:
        text += f" ({composed} job config{'s' if composed != 1 else ''} composed to compare)"
    unknown = [number for number in cost.to_run if number not in cost.estimates_s]
    kind = "" if cost.sequential else " of job time (jobs side by side take less)"
    total = format_duration(sum(cost.estimates_s.values()))
    if not cost.to_run:
        return text
    if not cost.estimates_s:
        return f"{text}; estimated duration unknown (no earlier run of these jobs in the cache)"
    if unknown:
        return f"{text}; estimated duration at least {total}{kind} ({len(unknown)} of the jobs never ran before)"
    return f"{text}; estimated duration {total}{kind}"


# ---- each job -------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sweep_cost(sweep_dir: str) -> SweepCost | None:
    """This process's sweep, or the plan file of a sweep planned elsewhere (read once per process)."""
    global _current
    if _current is not None and _current.sweep_dir == sweep_dir:
        return _current
    try:
        data = json.loads((Path(sweep_dir) / SWEEP_PLAN_FILE).read_text())
        _current = SweepCost.from_json(sweep_dir, data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return _current


@dataclass
class JobInSweep:
    cfg: DictConfig
    hydra_cfg: Any
    number: int
    cost: SweepCost | None
    started_at: str = field(default_factory=_now)
    started: float = field(default_factory=time.monotonic)


def job_started(hydra_cfg: Any, cfg: DictConfig) -> JobInSweep | None:
    """The job's first line in a sweep: its place and the time left; None outside a sweep."""
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    number = int(hydra_cfg.job.num)
    cost = _sweep_cost(str(hydra_cfg.sweep.dir))
    job = JobInSweep(cfg, hydra_cfg, number, cost)
    who = f"model={cfg.model.name} precision={cfg.precision.name} batch={cfg.batch}"
    if cost is None:
        log.info("[job %d] %s", number + 1, who)
        return job
    place = f"job {number + 1}/{cost.total}"
    if cost.reused and number in cost.to_run:
        place += f", {_ordinal(cost.to_run.index(number) + 1)} of {len(cost.to_run)} to run"
    left = cost.time_left_s(number)
    if cost.sequential:
        eta = f"~{format_duration(left)} left in the sweep" if left is not None else "time left unknown"
    else:
        eta = f"this job ~{format_duration(left)}" if left is not None else "this job's duration unknown"
    log.info("[%s] %s: %s", place, who, eta)
    return job


def job_finished(job: JobInSweep | None, result: Any) -> None:
    """An ok job: its duration into the cache's history (when it ran now, not reused) and its reuse record."""
    if job is None or result.status != "ok":
        return
    duration_s = time.monotonic() - job.started
    ran_now = (result.finished_at or "") >= job.started_at
    overrides = list(job.hydra_cfg.overrides.task)
    if ran_now:
        if job.cost is not None:
            job.cost.measured[job.number] = duration_s
        key = duration_key(job.hydra_cfg.runtime.choices, overrides, job.cfg.get("batch"))
        try:
            record_duration(str(job.cfg.cache_dir), key, duration_s)
        except OSError as error:  # the history is advice: a read-only cache costs the estimate, not the job
            log.debug("job duration not recorded (%s)", error)
    if job.cost is not None and job.cost.fingerprint:
        write_reuse_record(Path(job.hydra_cfg.runtime.output_dir), job.cost.fingerprint, overrides, result.config_hash)


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
