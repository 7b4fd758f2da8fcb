"""The child process of an isolated job: `python -m quantbench.job.child JOB_DIR [--log-file PATH]`.

Reads the resolved config the parent saved in `JOB_DIR/job.yaml`, runs the job, and writes
`JOB_DIR/result.json` through `run_job` like an in-process job would. It exits 0 whenever a
result was written (whatever its status); a non-zero exit tells the parent it was not.
By hand, it re-runs one job of a sweep exactly as the sweep ran it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from quantbench.runtime.processes import die_with_parent

# Set by the parent (quantbench.sweep.isolation): its pid, and its import path as a JSON list.
PARENT_PID_ENV = "QUANTBENCH_PARENT_PID"
PARENT_SYS_PATH_ENV = "QUANTBENCH_PARENT_SYS_PATH"
# Hydra's default job log format, so the child's lines read like the parent's.
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def _adopt_parent_import_path() -> None:
    """Whatever the parent could import (its sys.path), the child can too, found in the same
    order: with two plugins registering one name, both processes pick the same one."""
    parent = json.loads(os.environ.get(PARENT_SYS_PATH_ENV) or "[]")
    sys.path[:] = parent + [entry for entry in sys.path if entry not in parent]


def _configure_logging(log_files: list[str]) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(path, mode="a") for path in log_files]
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)


def child_arguments(job_dir: Path | str, log_files: list[str]) -> list[str]:
    """The arguments of `main` for one job: the one place they are built, for a spawned child
    (quantbench.sweep.isolation) and a forked one (quantbench.sweep.fork_server) alike."""
    arguments = [str(job_dir)]
    for path in log_files:
        arguments += ["--log-file", path]
    return arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantbench.job.child", description=__doc__.splitlines()[0])
    parser.add_argument("job_dir", type=Path, help="a job directory holding job.yaml")
    parser.add_argument("--log-file", action="append", default=[], help="append log lines here too (repeatable)")
    args = parser.parse_args(argv)
    from quantbench.measure.phases import take_spawn_time  # stdlib only: light

    spawned_at = take_spawn_time()  # first: the job's startup_s runs from the spawn to its load
    # No orphaned job keeps measuring, or holding a GPU, after its sweep is gone.
    expected = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(expected) if expected else None)
    _adopt_parent_import_path()
    from quantbench.job.discoveries import forget_if_stale  # stdlib only at import

    forget_if_stale()  # a forked job keeps the worker's plugin discoveries only for the same path
    _configure_logging(args.log_file)
    # Imported after the parent-death signal is armed: importing takes seconds.
    from quantbench.jobdir import JOB_CONFIG_FILE, load_job_config, write_traceback

    if not (args.job_dir / JOB_CONFIG_FILE).is_file():
        print(
            f"quantbench.job.child: no {JOB_CONFIG_FILE} in {args.job_dir}; "
            "expected the job directory of an isolated job",
            file=sys.stderr,
        )
        return 2
    try:
        from quantbench.job.run import run_job

        run_job(load_job_config(args.job_dir), args.job_dir, spawned_at=spawned_at)
    except BaseException:  # run_job turns job failures into rows; this is everything around it
        write_traceback(args.job_dir, traceback.format_exc())
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
