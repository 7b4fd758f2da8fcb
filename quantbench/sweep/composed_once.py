"""Each job's config composed once per sweep, not twice.

Hydra's sweeper composes every job's config to validate a batch before launching it (an error then
stops the sweep before its first job), and its basic launcher composes each one again right before
running it. A quantbench config takes ~0.15 s to compose on a quiet 2-core machine (every option
file read and merged): twice per job was a third of a small job's overhead. `KeptConfigs` wraps the
sweep's config loader: the sweeper's validation keeps what it composed, and the launcher's
`load_sweep_config` for the same job takes it instead of composing it again.

Only for launchers that compose in this process (Hydra's basic launcher): a SLURM launcher pickles
its config loader into every job, which must not carry a batch of configs. Batches larger than
`KEEP_MAX_JOBS` are validated as before and composed again by the launcher, so memory stays bounded
(one config holds a few hundred kB of Python objects).
"""

from __future__ import annotations

from typing import Any, Sequence

KEEP_MAX_JOBS = 256
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # runs the jobs in this process


class KeptConfigs:
    """Hydra's config loader, plus the job configs composed while validating the current batch."""

    def __init__(self, loader: Any):
        self.loader = loader
        self.kept: dict[tuple[str, ...], Any] = {}

    def __getattr__(self, name: str) -> Any:  # everything else is the wrapped loader's
        return getattr(self.loader, name)

    def validate(self, master_config: Any, batch: Sequence[Sequence[str]]) -> None:
        """Compose every job of `batch` (raising as Hydra's validation does) and keep the configs
        for the launcher, or only compose them when the batch is too large to keep."""
        self.kept.clear()  # a previous batch's leftovers (a launcher that stopped early)
        keep = len(batch) <= KEEP_MAX_JOBS
        for overrides in batch:
            config = self.loader.load_sweep_config(master_config=master_config, sweep_overrides=list(overrides))
            if keep:
                self.kept[tuple(overrides)] = config

    def load_sweep_config(self, master_config: Any, sweep_overrides: list[str]) -> Any:
        """The job's config kept by the validation (each handed out once), else composed now."""
        kept = self.kept.pop(tuple(sweep_overrides), None)
        if kept is not None:
            return kept
        return self.loader.load_sweep_config(master_config=master_config, sweep_overrides=sweep_overrides)


def keep_validated_configs(sweeper: Any) -> None:
    """After Hydra's sweeper setup: share one KeptConfigs between the sweeper and its launcher, when
    the launcher composes in this process."""
    from dataclasses import replace

    launcher = type(sweeper.launcher)
    # By name: Hydra's plugin scan executes its plugin modules again, making a second class object.
    if f"{launcher.__module__}.{launcher.__qualname__}" != BASIC_LAUNCHER:
        return
    context = replace(sweeper.hydra_context, config_loader=KeptConfigs(sweeper.hydra_context.config_loader))
    sweeper.hydra_context = sweeper.launcher.hydra_context = context
