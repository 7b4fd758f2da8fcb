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

Hydra imports every module under hydra_plugins/ when any Hydra app starts: this one imports
only Hydra's own basic sweeper.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.errors import HydraException
from omegaconf import OmegaConf

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


class RepeatingSweeper(BasicSweeper):
    _repeat: List[str] = []

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
        assert self.config is not None
        self._repeat = repeat_axis(OmegaConf.select(self.config, REPEATS_KEY, default=1), list(arguments))
        return super().sweep(arguments)

    def _parse_config(self) -> List[str]:
        # Before hydra.sweeper.params and the command line: the slowest-varying axis.
        return [*self._repeat, *super()._parse_config()]
