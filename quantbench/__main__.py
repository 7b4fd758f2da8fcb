"""The Hydra entry point.

python -m quantbench                                    one benchmark, default model
python -m quantbench -m precision=fp16,nf4 batch=32,256 a sweep, collected at the end
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from quantbench.cli.help import register_help_resolver
from quantbench.cli.overrides import prepare_arguments
from quantbench.config.plugin_configs import config_packages
from quantbench.config.schema import register_configs
from quantbench.errors import QuantbenchError
from quantbench.sweep.early_worker import guess_from_command_line

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def app(cfg: DictConfig) -> None:
    from quantbench.collect.sweeps import frame_from_rows, job_rows, print_table
    from quantbench.sweep.cost import job_finished, job_started
    from quantbench.sweep.execute import command_line_keys, execute_job
    from quantbench.sweep.interrupt import note_running

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    note_running(hydra_cfg.sweep.dir if multirun else hydra_cfg.runtime.output_dir, multirun)
    if not multirun and int(cfg.bench.repeats) > 1:  # the repeat axis is a sweep axis (quantbench's sweeper)
        log.warning("bench.repeats=%s applies to sweeps (-m); this single run is one job", cfg.bench.repeats)
    in_sweep = job_started(hydra_cfg, cfg)  # in a sweep: its place and the time left
    # Resumed, isolated in a child process (bench.isolation=process) or run here (none).
    result = execute_job(cfg, Path(hydra_cfg.runtime.output_dir), command_line_keys(hydra_cfg))
    job_finished(in_sweep, result)  # its duration into the cache's history, its reuse record
    if hydra_cfg.mode == RunMode.RUN:
        print_table(frame_from_rows(job_rows(result.to_json())), f"quantbench: {hydra_cfg.runtime.output_dir}")
        if result.sample_output:
            print(f"sample output: {result.sample_output[0]!r}")
        if result.status != "ok":
            sys.exit(1)  # single runs only: in a sweep, one job's status never ends the sweep


def main() -> None:
    register_help_resolver(sys.argv[1:])  # the group listing only when --help prints it
    guess_from_command_line(sys.argv[1:])  # a sweep's warm worker imports torch while Hydra starts
    try:  # one line for a mistake on the command line (or a plugin registered twice), before Hydra composes anything
        register_configs()
        config_packages()  # a conf tree two packages register: this one line, not a traceback from Hydra's search path
        sys.argv[1:] = prepare_arguments(sys.argv[1:])
    except QuantbenchError as error:
        print(f"quantbench: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C: the summary so far and one line, not a traceback
        from quantbench.sweep.interrupt import INTERRUPTED_EXIT_CODE, after_interrupt

        print(after_interrupt(), file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)


def main_from_cli(argv: list[str]) -> int:
    """`quantbench run ARGS` is `python -m quantbench ARGS`."""
    sys.argv = ["quantbench", *argv]
    main()
    return 0


if __name__ == "__main__":
    main()
