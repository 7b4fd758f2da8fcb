"""The child process of an isolated job: `python -m quantbench.child JOB_DIR [--log-file PATH]`.

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
import signal
import sys
import traceback
from pathlib import Path

# Set by the parent (quantbench.isolation): its pid, and its import path as a JSON list.
PARENT_PID_ENV = "QUANTBENCH_PARENT_PID"
PARENT_SYS_PATH_ENV = "QUANTBENCH_PARENT_SYS_PATH"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# Hydra's default job log format, so the child's lines read like the parent's.
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def _adopt_parent_import_path() -> None:
    """Whatever the parent could import (its sys.path), the child can too, found in the same
    order: with two plugins registering one name, both processes pick the same one."""
    parent = json.loads(os.environ.get(PARENT_SYS_PATH_ENV) or "[]")
    sys.path[:] = parent + [entry for entry in sys.path if entry not in parent]


def _die_with_parent() -> None:
    """On Linux, the kernel kills this process when the sweep's process dies (killed, crashed):
    no orphaned job keeps measuring, or holding a GPU, after its sweep is gone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    expected = os.environ.get(PARENT_PID_ENV)
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(1)


def _configure_logging(log_files: list[str]) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers += [logging.FileHandler(path, mode="a") for path in log_files]
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers, force=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantbench.child", description=__doc__.splitlines()[0])
    parser.add_argument("job_dir", type=Path, help="a job directory holding job.yaml")
    parser.add_argument("--log-file", action="append", default=[], help="append log lines here too (repeatable)")
    args = parser.parse_args(argv)
    _die_with_parent()
    _adopt_parent_import_path()
    _configure_logging(args.log_file)
    try:
        from omegaconf import OmegaConf

        from quantbench.isolation import JOB_CONFIG_FILE
        from quantbench.job import run_job

        config_path = args.job_dir / JOB_CONFIG_FILE
        if not config_path.is_file():
            print(f"quantbench.child: {config_path} not found; expected the job.yaml an isolated job writes", file=sys.stderr)
            return 2
        cfg = OmegaConf.load(config_path)
        OmegaConf.set_struct(cfg, True)  # as in the app: a misspelt key is an error, not None
        run_job(cfg, args.job_dir)
    except BaseException:  # run_job turns job failures into rows; this is everything around it
        from quantbench.resume import TRACEBACK_FILE

        (args.job_dir / TRACEBACK_FILE).write_text(traceback.format_exc())
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
