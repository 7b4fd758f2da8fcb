"""`quantbench resume DIR [OVERRIDES]`: a sweep run again into its own directory, with the overrides
Hydra recorded in DIR/multirun.yaml, which is the same as typing the sweep again with
`hydra.sweep.dir=DIR`. The sweep is planned before anything is launched (quantbench.sweep.plan): only
the jobs without an ok result of the same config are launched, under their own job numbers; what
counts as "the same job" (the config identity, the reuse rule) is quantbench.jobdir's.
`--dry-run` plans and says what would run and what it would cost, and launches nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

SWEEP_RECORD = "multirun.yaml"  # Hydra's record of a sweep: its config and the overrides it ran with
# Hydra overrides that belong to the old invocation, not to the sweep's definition.
_NOT_REPLAYED = ("hydra.sweep.dir=", "hydra.run.dir=", "hydra.mode=", "hydra.sweeper.dry_run=")
DRY_RUN = "hydra.sweeper.dry_run=true"  # quantbench's sweeper: plan, log the plan, launch nothing


def replay_arguments(sweep_dir: Path, extra: list[str]) -> list[str]:
    """The command-line arguments that ran `sweep_dir`, pointed at it again, plus `extra`."""
    record = Path(sweep_dir) / SWEEP_RECORD
    if not record.is_file():
        raise FileNotFoundError(
            f"no {SWEEP_RECORD} in {sweep_dir}; expected a sweep directory written by `python -m quantbench -m ...`"
        )
    overrides = OmegaConf.load(record).hydra.overrides
    replayed = [item for item in overrides.hydra if not item.startswith(_NOT_REPLAYED)]
    # A resume=false given to one run forces that run only; replaying it would never resume again.
    task = [item for item in overrides.task if item.split("=")[0].lstrip("+~") != "resume"]
    return ["-m", *task, *replayed, f"hydra.sweep.dir={sweep_dir}", *extra]


def main(argv: list[str] | None = None) -> int:
    """`quantbench resume DIR [OVERRIDES]`: the sweep in DIR again; only what lacks an ok result runs."""
    parser = argparse.ArgumentParser(
        prog="quantbench resume",
        description="Run a sweep again into its own directory, with the overrides it was started with: "
        "jobs with an ok result of the same config are reused, the others run.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (holds multirun.yaml)")
    parser.add_argument("overrides", nargs="*", help="extra overrides, e.g. resume=false or bench.timeout_s=600")
    parser.add_argument(
        "--dry-run", action="store_true", help="say how many jobs would be reused and run, and the estimate; run none"
    )
    args = parser.parse_args(argv)
    try:
        arguments = replay_arguments(args.sweep_dir, [*args.overrides, *([DRY_RUN] if args.dry_run else [])])
    except FileNotFoundError as error:
        print(f"quantbench resume: {error}", file=sys.stderr)
        return 2
    from quantbench.__main__ import main_from_cli  # the Hydra app, imported only to run it

    return main_from_cli(arguments)
