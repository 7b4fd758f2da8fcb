"""The warm worker started at the very start of a sweep's process, not at its first job.

The worker imports torch and transformers (seconds), and the first job waits for it. Meanwhile the
sweep's own process starts Hydra, composes the primary config and composes every job's config to
validate the batch: on 2 cores the two can run side by side. So `python -m quantbench -m ...`
starts the worker from its command line, before Hydra (`guess_from_command_line`), when nothing
there says the jobs will not be forked here; once the config is composed, at the sweep's start
(quantbench.sweep.callbacks), `settle` starts it if the command line could not tell, or stops a
worker started for nothing (a cluster launcher's jobs run elsewhere, `bench.isolation` is not
`process`).
"""

from __future__ import annotations

import os
from typing import Any

from quantbench.sweep.composed_once import BASIC_LAUNCHER

ISOLATION_ENV = "QUANTBENCH_ISOLATION"  # the schema's default for bench.isolation
# Flags with which Hydra runs no job (help, the composed config, shell completion).
_NO_JOB_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion")


def _forks_here(argv: list[str]) -> bool:
    from hydra._internal.utils import get_args_parser

    try:
        args = get_args_parser().parse_known_args(argv)[0]
    except SystemExit:  # a malformed command line: Hydra says so itself
        return False
    if any(getattr(args, flag, None) for flag in _NO_JOB_FLAGS):
        return False
    values = {}
    for override in args.overrides:
        key, _, value = override.partition("=")
        values[key.lstrip("+~")] = value
    multirun = args.multirun or values.get("hydra.mode", "").upper() == "MULTIRUN"
    isolation = values.get("bench.isolation", os.environ.get(ISOLATION_ENV, "process"))
    return multirun and "hydra/launcher" not in values and isolation == "process"


def guess_from_command_line(argv: list[str]) -> None:
    """Before Hydra starts: start the worker if this command line sweeps with forked jobs."""
    if _forks_here(argv):
        _start()


def settle(config: Any) -> None:
    """At the sweep's start, with the composed config: the worker if its jobs will be forked
    here (Hydra's basic launcher, `bench.isolation=process`), else none."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from quantbench.sweep.warm_worker import stop_unused

    try:
        wanted = OmegaConf.select(config, "hydra.launcher._target_", default=None) == BASIC_LAUNCHER and (
            OmegaConf.select(config, "bench.isolation", default="process") == "process"
        )
    except OmegaConfBaseException:  # not resolvable here: each job decides, as before
        wanted = False
    if wanted:
        _start()
    else:
        stop_unused()


def _start() -> None:
    from quantbench.sweep.isolation import child_environment
    from quantbench.sweep.warm_worker import start_early

    start_early(child_environment())
