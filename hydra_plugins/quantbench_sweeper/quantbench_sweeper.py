"""Hydra's basic sweeper, plus `bench.repeats`: every configuration of a sweep that many times.

The repeats are one more sweep axis, `bench.repeat=0..repeats-1`, put first. Hydra's basic
sweeper takes the cartesian product with the first axis varying slowest, so the jobs run
round-robin: every configuration once, then every one again, and drift of a shared machine over
the sweep's minutes hits every configuration alike. Job numbers (the job directories) keep that
launch order. Each repeat is its own job with its own config (`bench.repeat`), so a resumed sweep
re-runs exactly the repeats that lack an ok result, and any launcher (SLURM included) gets the
jobs in the same order.

With `bench.repeats=1` (the default) nothing is added: job configs, overrides and config hashes
are what they were before repeats existed.

Before launching, the sweep is planned (quantbench.sweep.plan): in a sweep directory that already
holds results (`quantbench resume`, or the same sweep run again with `hydra.sweep.dir=`), only the
jobs without an ok result of the same config are launched, each under its own job number, and one
line says how many jobs there are, how many are reused, and what the rest will cost
(quantbench.sweep.cost). A launcher with `launch_jobs(job_overrides, job_numbers)` (quantbench's
SLURM launcher) gets all of them at once; any other launcher gets each contiguous run of job
numbers in turn. `hydra.sweeper.dry_run=true` plans and says so, and launches nothing. Past
VALIDATE_ALL_UP_TO jobs, only enough jobs are composed before launching to try each override value
once, not every job (Hydra's basic sweeper composes all: an hour at 10,000 jobs).

Hydra imports every module under hydra_plugins/ when any Hydra app starts: this one imports
only Hydra's own basic sweeper; quantbench itself is imported when a sweep starts.
"""

# No `from __future__ import annotations`: Hydra loads plugin modules without registering them in
# sys.modules, where a dataclass with string annotations looks itself up.
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.errors import HydraException
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

REPEAT_KEY = "bench.repeat"
REPEATS_KEY = "bench.repeats"


def repeat_axis(repeats: Any, arguments: List[str]) -> List[str]:
    """The repeat axis to put first (empty for one repeat, or when the command line sweeps
    bench.repeat itself)."""
    try:
        count = int(repeats)
    except (TypeError, ValueError):
        raise HydraException(f"{REPEATS_KEY} must be a whole number >= 1, got '{repeats}'") from None
    if count < 1:
        raise HydraException(f"{REPEATS_KEY} must be a whole number >= 1, got {count}")
    if count == 1 or any(argument.split("=", 1)[0].lstrip("+~") == REPEAT_KEY for argument in arguments):
        return []
    return [f"{REPEAT_KEY}=range(0,{count})"]


@dataclass
class QuantbenchSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.quantbench_sweeper.quantbench_sweeper.RepeatingSweeper"
    dry_run: bool = False  # plan the sweep, say what it would launch and cost, launch nothing


ConfigStore.instance().store(group="hydra/sweeper", name="quantbench_schema", node=QuantbenchSweeperConf)


# Composing a job's config costs about 0.3 s on two cores; Hydra's basic sweeper composes every job
# before launching any, to catch a bad override early: an hour at 10,000 jobs. Past this many jobs
# only enough of them are composed up front to try every override value once (`covering_jobs`).
VALIDATE_ALL_UP_TO = 100


def covering_jobs(batch: Sequence[Sequence[str]]) -> List[Sequence[str]]:
    """Jobs of `batch` that together hold every override it holds, in first-seen order."""
    seen: set = set()
    chosen = []
    for overrides in batch:
        if not seen.issuperset(overrides):
            chosen.append(overrides)
            seen.update(overrides)
    return chosen


def contiguous_runs(numbers: Sequence[int]) -> List[List[int]]:
    """Job numbers split where they skip: [0, 1, 4, 5, 6] -> [[0, 1], [4, 5, 6]]."""
    runs: List[List[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] + 1 == number:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs


class RepeatingSweeper(BasicSweeper):
    _repeat: List[str] = []

    def __init__(
        self, max_batch_size: Optional[int] = None, params: Optional[Dict[str, str]] = None, dry_run: bool = False
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.dry_run = dry_run

    def setup(self, **kwargs: Any) -> None:
        super().setup(**kwargs)
        from quantbench.sweep.composed_once import keep_validated_configs

        keep_validated_configs(self)  # each job's config composed once, not again by the launcher

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from quantbench.sweep.composed_once import KeptConfigs

        assert self.hydra_context is not None
        loader = self.hydra_context.config_loader
        if isinstance(loader, KeptConfigs):
            loader.validate(self.config, batch)
        else:
            super().validate_batch_is_legal(batch)

    def sweep(self, arguments: List[str]) -> Any:
        assert self.config is not None and self.hydra_context is not None and self.launcher is not None
        self._repeat = repeat_axis(OmegaConf.select(self.config, REPEATS_KEY, default=1), list(arguments))
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]

        from quantbench.sweep.cost import announce_sweep
        from quantbench.sweep.plan import composer, composition_fingerprint, plan_sweep

        loader = self.hydra_context.config_loader
        plan = plan_sweep(
            self.config, jobs, composition_fingerprint(loader, self.config), composer(loader, self.config)
        )
        sequential = type(self.launcher).__name__ == "BasicLauncher"  # Hydra's: one job after another, here
        announce_sweep(self.config, jobs, plan, sequential, launching=not self.dry_run)
        if self.dry_run:
            log.info("dry run (hydra.sweeper.dry_run=true): nothing launched")
            return []
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(
            self.config, sweep_dir / "multirun.yaml"
        )  # Hydra's record of the sweep, as its sweeper writes it
        returns: List[Sequence[JobReturn]] = []
        size = self.max_batch_size if self.max_batch_size and self.max_batch_size > 0 else max(len(plan.to_run), 1)
        for start in range(0, len(plan.to_run), size):
            numbers = plan.to_run[start : start + size]
            batch = [jobs[number] for number in numbers]
            # The reused jobs were composed when they ran; in a large batch, each override value once.
            self.validate_batch_is_legal(batch if len(batch) <= VALIDATE_ALL_UP_TO else covering_jobs(batch))
            results = self._launch(batch, numbers)
            for result in results:
                _ = result.return_value  # raises if the job raised, as Hydra's basic sweeper does
            returns.append(results)
        return returns

    def _launch(self, batch: List[List[str]], numbers: List[int]) -> List[JobReturn]:
        """Launch `batch` as job numbers `numbers`: at once where the launcher takes explicit numbers."""
        assert self.launcher is not None
        launch_jobs = getattr(self.launcher, "launch_jobs", None)
        if launch_jobs is not None:
            return list(launch_jobs(batch, numbers))
        results: List[JobReturn] = []
        position = 0
        for run in contiguous_runs(numbers):
            results.extend(self.launcher.launch(batch[position : position + len(run)], initial_job_idx=run[0]))
            position += len(run)
        return results

    def _parse_config(self) -> List[str]:
        # Before hydra.sweeper.params and the command line: the slowest-varying axis.
        return [*self._repeat, *super()._parse_config()]
