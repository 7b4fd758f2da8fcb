"""SLURM sweeps where each job lands on its own hardware, and that survive SLURM ending a job:
`hydra/launcher=quantbench_slurm`.

Hydra's submitit launcher submits a whole sweep as one job array with one set of sbatch
parameters, resolved from the sweep's primary config. A sweep over `hardware=h100,l40s` needs
each job on its own partition and GPU type, so this launcher resolves the placement keys
(`hydra.launcher.partition: ${hardware.slurm.partition}`, ...) in every job's own config,
groups jobs with the same placement, and submits one array per group. Job directories and
pickling are submitit's and Hydra's, unchanged: the jobs still write into `<sweep dir>/<job
number>/`, and the collector still runs at the end.

Waiting is this launcher's own (quantbench.sweep.slurm_wait), not submitit's `job.results()`:
that asks `sacct`, which fails where accounting is off, and a job SLURM killed (time limit,
`scancel`, node failure, memory) leaves no result, so the sweep would wait forever or raise and
never collect. Here each job that ended without its own result gets a `failed` result.json with
SLURM's reason ("SLURM: TIMEOUT (time limit 1:00; ...)"), and the sweep is collected as usual.
Each job directory links to the job's SLURM stdout and stderr (`slurm.out`, `slurm.err`).

`+hydra.launcher.cluster=local` runs the same grouping on this machine through submitit's local
executor (the SLURM-only parameters are then ignored): a dry run of a cluster sweep.

Hydra instantiates launchers only from the hydra_plugins package and imports every module here
when any Hydra app starts: this one imports Hydra and the submitit launcher plugin (itself
light; submitit and quantbench's waiting are imported only when jobs are submitted), and nothing
at all without it.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict, read_write

try:
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
except ImportError:  # hydra-submitit-launcher not installed: no cluster sweeps, nothing else lost
    BaseSubmititLauncher = None

log = logging.getLogger(__name__)

# Launcher keys that may differ from job to job (interpolated from the job's hardware config).
PLACEMENT_KEYS = ("partition", "gres", "constraint", "gpus_per_node", "cpus_per_task", "mem_gb")
# Keys submitit takes when the executor is built, not as job parameters.
_INIT_KEYS = {"submitit_folder", "max_num_timeout"}
# Hydra's default job subdirectory: the job number, known without composing the job's config.
_NUMBERED_SUBDIR = "${hydra.job.num}"


def _utc(slurm_time: str | None) -> str | None:
    """SLURM's local, zone-less time (2026-12-06T08:39:48) as result.json's UTC ISO time."""
    try:
        return datetime.fromisoformat(slurm_time).astimezone(timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return None


if BaseSubmititLauncher is not None:

    class HardwareSlurmLauncher(BaseSubmititLauncher):
        _EXECUTOR = "slurm"

        def __init__(self, cluster: str = "slurm", **params: Any) -> None:
            super().__init__(**params)
            self.cluster = cluster  # "slurm"; "local" for a dry run on this machine

        def placement_of(self, overrides: Sequence[str]) -> dict[str, Any]:
            """The placement keys of one job, resolved in that job's own config."""
            assert self.hydra_context is not None and self.config is not None
            job_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            launcher = job_config.hydra.launcher
            return {key: OmegaConf.select(launcher, key) for key in PLACEMENT_KEYS if key in launcher}

        def placement_groups(self, job_overrides: Sequence[Sequence[str]]) -> list[tuple[dict[str, Any], list[int]]]:
            """(placement, positions in job_overrides) for each distinct placement, in first-seen order."""
            groups: dict[tuple, tuple[dict[str, Any], list[int]]] = {}
            for position, overrides in enumerate(job_overrides):
                placement = self.placement_of(overrides)
                key = tuple(sorted(placement.items(), key=lambda item: item[0]))
                groups.setdefault(key, (placement, []))[1].append(position)
            return list(groups.values())

        def _executor(self, placement: dict[str, Any]) -> Any:
            import submitit  # lazily, as Hydra's own launcher does: plugin discovery stays fast

            params = {**self.params, **placement}
            executor = submitit.AutoExecutor(
                cluster=self.cluster, folder=params["submitit_folder"], slurm_max_num_timeout=params["max_num_timeout"]
            )
            generic = set(OmegaConf.structured(BaseQueueConf).keys())
            executor.update_parameters(
                **{
                    key if key in generic else f"slurm_{key}": value
                    for key, value in params.items()
                    if key not in _INIT_KEYS
                }
            )
            return executor

        def job_dir_of(self, overrides: Sequence[str], number: int) -> Path:
            """Where job `number` writes: `<sweep dir>/<number>` unless hydra.sweep.subdir says otherwise."""
            assert self.hydra_context is not None and self.config is not None
            sweep = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)
            if sweep.get("subdir") == _NUMBERED_SUBDIR:
                return Path(str(self.config.hydra.sweep.dir)) / str(number)
            job_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(job_config.hydra.job):
                job_config.hydra.job.num = number
            return Path(str(job_config.hydra.sweep.dir)) / str(job_config.hydra.sweep.subdir)

        def task_config_of(self, overrides: Sequence[str], number: int, job_id: str, job_dir: Path) -> Any:
            """Job `number`'s resolved config less Hydra's node, composed as Hydra composes it inside
            the job (quantbench.jobdir.job_config): for the failed row of a job that wrote none."""
            from hydra.core.hydra_config import HydraConfig

            from quantbench.jobdir import job_config

            assert self.hydra_context is not None and self.config is not None
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with read_write(sweep_config.hydra), open_dict(sweep_config.hydra):
                sweep_config.hydra.job.id = job_id
                sweep_config.hydra.job.num = number
                sweep_config.hydra.runtime.output_dir = str(job_dir.absolute())
            hydra_config = HydraConfig.instance()
            previous = hydra_config.cfg
            hydra_config.set_config(sweep_config)  # ${hydra:...} interpolations resolve as in the job
            try:
                task_config = copy.deepcopy(sweep_config)
                with read_write(task_config), open_dict(task_config):
                    del task_config["hydra"]
                return job_config(task_config)
            finally:
                hydra_config.cfg = previous

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            return self.launch_jobs(job_overrides, range(initial_job_idx, initial_job_idx + len(job_overrides)))

        def launch_jobs(
            self, job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]
        ) -> Sequence[JobReturn]:
            """Launch each job under its own job number (its directory): a resumed sweep launches
            only the jobs it lacks, all at once, however their numbers skip (quantbench's sweeper)."""
            from quantbench.sweep.slurm_jobs import link_job_logs, warning_signal_problem
            from quantbench.sweep.slurm_wait import SubmittedJob

            assert self.config is not None
            problem = warning_signal_problem(self.params.get("timeout_min"), self.params.get("signal_delay_s"))
            if problem and self.cluster == "slurm":
                raise HydraException(problem)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
            submitted: list[Any] = [None] * len(job_overrides)
            # Everything is submitted before anything is awaited: the groups run side by side.
            for placement, positions in self.placement_groups(job_overrides):
                shown = (
                    " ".join(f"{key}={value}" for key, value in placement.items() if value is not None)
                    or "default placement"
                )
                log.info("submitit '%s': %d job(s) with %s", self.cluster, len(positions), shown)
                arguments = []
                for position in positions:
                    number = job_numbers[position]
                    log.info("\t#%d : %s", number, " ".join(filter_overrides(job_overrides[position])))
                    arguments.append(
                        (
                            list(job_overrides[position]),
                            "hydra.sweep.dir",
                            number,
                            f"job_id_for_{number}",
                            Singleton.get_state(),
                        )
                    )
                submitted_at = time.time()  # before submitting: a job may write its result at once
                jobs = self._executor(placement).map_array(self, *zip(*arguments))
                for position, job in zip(positions, jobs):
                    job_dir = self.job_dir_of(job_overrides[position], job_numbers[position])
                    submitted[position] = SubmittedJob(job, job_dir, submitted_at)
                    link_job_logs(job_dir, job.paths.stdout, job.paths.stderr)
                log.info("submitted %s", ", ".join(sorted({job.job_id.split("_")[0] for job in jobs})))
            return self.wait(submitted, job_overrides, job_numbers)

        def wait(self, submitted: Sequence[Any], job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]):
            """Every job's JobReturn once it ended; a job that ended without its own result first gets
            a `failed` result.json with the reason, so the sweep goes on to collect it."""
            from quantbench.sweep.slurm_wait import wait_for_jobs

            returns: list[Any] = [None] * len(submitted)
            for end in wait_for_jobs(submitted, self.cluster):
                overrides = list(job_overrides[end.position])
                job_dir = submitted[end.position].job_dir
                if end.reason is not None:
                    try:
                        self.write_failed(submitted[end.position], end, overrides, job_numbers[end.position])
                    except Exception as error:  # the collector still shows the job, as one that did not finish
                        log.error(
                            "%s: no failed row written (%s: %s); %s", job_dir, type(error).__name__, error, end.reason
                        )
                returned = end.returned
                if end.reason is None and isinstance(returned, JobReturn) and returned.status == JobStatus.COMPLETED:
                    returns[end.position] = returned
                else:  # the row on disk says what happened; the sweep itself goes on
                    returns[end.position] = JobReturn(
                        overrides=overrides, working_dir=str(job_dir), status=JobStatus.COMPLETED, _return_value=None
                    )
            return returns

        def write_failed(self, submitted: Any, end: Any, overrides: list[str], number: int) -> None:
            from quantbench.jobdir import clear_previous_result
            from quantbench.runtime.slurm_job import submitted_slurm_job
            from quantbench.sweep.isolation import write_failed_result

            job_id = submitted.job.job_id
            config = self.task_config_of(overrides, number, job_id, submitted.job_dir)
            if not end.wrote_result:
                clear_previous_result(submitted.job_dir)  # an earlier run's result: kept aside or removed
            state = end.state
            write_failed_result(
                OmegaConf.create(config),
                config,
                submitted.job_dir,
                end.reason,
                started_at=_utc(state.started_at if state else None),
                slurm=submitted_slurm_job(job_id, state.node if state else None) if self.cluster == "slurm" else None,
            )
