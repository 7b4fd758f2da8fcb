"""SLURM sweeps where each job lands on its own hardware: `hydra/launcher=quantbench_slurm`.

Hydra's submitit launcher submits a whole sweep as one job array with one set of sbatch
parameters, resolved from the sweep's primary config. A sweep over `hardware=h100,l40s` needs
each job on its own partition and GPU type, so this launcher resolves the placement keys
(`hydra.launcher.partition: ${hardware.slurm.partition}`, ...) in every job's own config,
groups jobs with the same placement, and submits one array per group. Everything else (job
directories, pickling, requeueing, waiting for results) is submitit's and Hydra's, unchanged:
the jobs still write into `<sweep dir>/<job number>/`, and the collector still runs at the end.

`+hydra.launcher.cluster=local` runs the same grouping on this machine through submitit's local
executor (the SLURM-only parameters are then ignored): a dry run of a cluster sweep.

Hydra instantiates launchers only from the hydra_plugins package and imports every module here
when any Hydra app starts: this one imports Hydra and the submitit launcher plugin (itself
light; submitit is imported only when jobs are submitted), and nothing at all without it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import OmegaConf

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

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            return self.launch_jobs(job_overrides, range(initial_job_idx, initial_job_idx + len(job_overrides)))

        def launch_jobs(
            self, job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]
        ) -> Sequence[JobReturn]:
            """Launch each job under its own job number (its directory): a resumed sweep launches
            only the jobs it lacks, all at once, however their numbers skip (quantbench's sweeper)."""
            assert self.config is not None
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
                jobs = self._executor(placement).map_array(self, *zip(*arguments))
                for position, job in zip(positions, jobs):
                    submitted[position] = job
            return [job.results()[0] for job in submitted]
