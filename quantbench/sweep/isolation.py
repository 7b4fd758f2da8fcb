"""Isolated jobs: each job's measurement runs in a fresh child process (`bench.isolation=process`).

Why: peak memory (host RSS, CUDA allocator, NVML) is then the job's own, not what earlier jobs
left behind; and a crash that no `except` can catch (a segfault in a kernel, the kernel's OOM
killer, a hang) takes down only the child. The parent waits, at most `bench.timeout_s`, and the
sweep goes on.

The child is forked from the sweep's warm worker (quantbench.sweep.warm_worker), which has torch and
transformers imported; with `bench.isolation=spawn`, or when there is no worker, it is a fresh
`python -m quantbench.job.child <job_dir>`. Either way it runs quantbench.job.child's `main`, reading the
job's resolved config from
`<job_dir>/job.yaml`, and writes `result.json` itself through `run_job`. Only when it did not
(killed, crashed, timed out) does the parent write a `failed` result with the reason.
`python -m quantbench.job.child <job_dir>` also re-runs one job by hand, for debugging.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantbench.errors import UnreadableResult
from quantbench.job.child import PARENT_PID_ENV, PARENT_SYS_PATH_ENV, child_arguments
from quantbench.jobdir import (
    RESULT_FILE,
    JobResult,
    config_hash,
    has_result,
    identity_of,
    last_traceback_line,
    read_result,
    write_job_config,
    write_result,
)
from quantbench.measure.phases import spawn_environment
from quantbench.runtime.processes import stop_process_group

log = logging.getLogger("quantbench")

WAIT_SLICE_S = 0.5
# Hints for the signals a benchmark dies of; the reason row is all a user sees of a dead child.
SIGNAL_HINTS = {
    "SIGKILL": "out of memory? the kernel's OOM killer sends SIGKILL",
    "SIGSEGV": "a crash in native code: a kernel, a driver or a C extension",
    "SIGBUS": "a crash in native code: a kernel, a driver or a C extension",
    "SIGABRT": "a native library aborted",
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _log_files() -> list[str]:
    """Hydra's job log file(s), so the child's log lines land where the parent's would."""
    return [
        handler.baseFilename for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)
    ]


def child_command(job_dir: Path) -> list[str]:
    return [sys.executable, "-m", "quantbench.job.child", *child_arguments(job_dir, _log_files())]


def child_environment() -> dict[str, str]:
    """The parent's environment, plus its import path: modules and plugins the parent can import
    (a test directory, a notebook's sys.path.append) the child can import too."""
    environment = dict(os.environ)
    environment[PARENT_SYS_PATH_ENV] = json.dumps([entry for entry in sys.path if entry])
    environment[PARENT_PID_ENV] = str(os.getpid())  # the child dies with this process
    return spawn_environment(environment)  # the child's startup_s starts here


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else f"signal {-returncode}"
        hint = SIGNAL_HINTS.get(name)
        return f"the job's process was killed by {name}" + (f" ({hint})" if hint else "")
    return f"the job's process exited with code {returncode}"


def _wait(process: subprocess.Popen, timeout_s: float | None) -> int | None:
    """The child's return code, or None past the timeout. Waits in short slices: a blocking
    waitpid never returns to Python when Ctrl-C's SIGINT lands on another of this process's
    threads, so the KeyboardInterrupt would wait for the job to end."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            return process.wait(timeout=WAIT_SLICE_S)
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                return None


def start_child(job_dir: Path, fork: bool) -> Any:
    """The job's process: forked by the sweep's warm worker (`fork`, quantbench.sweep.warm_worker), or a
    fresh interpreter when `fork` is off or there is no worker. Either leads its own session, so that
    a timeout can kill the child's whole process tree (compile workers, quantization pools) with one
    killpg."""
    if fork:
        from quantbench.sweep.warm_worker import start_job

        forked = start_job(job_dir, _log_files(), child_environment())
        if forked is not None:
            return forked
    return subprocess.Popen(child_command(job_dir), env=child_environment(), start_new_session=True)


def run_isolated(
    cfg: Any, config: dict[str, Any], job_dir: Path, timeout_s: float | None, fork: bool = True
) -> JobResult:
    """Run one job in a child process and return its result; never raises for the child's failures."""
    job_dir = Path(job_dir)
    write_job_config(job_dir, config)
    started_at = _now()
    process = start_child(job_dir, fork)
    try:
        returncode = _wait(process, timeout_s)
    except BaseException:  # Ctrl-C in the parent: take the child down with us
        stop_process_group(process)
        raise
    if returncode is None:
        stop_process_group(process)
        reason = f"timed out after {timeout_s:g} s (bench.timeout_s); the job's process was killed"
    else:
        reason = describe_exit(returncode) if returncode != 0 else None
    if has_result(job_dir):
        try:
            result = read_result(job_dir)
        except UnreadableResult as unreadable:
            reason = f"{reason or 'the job finished'}, but {unreadable}"
        else:
            # The child finished its result; anything after that (a crash while exiting) does not
            # change the numbers, but is worth a line in the log.
            if reason:
                log.warning("%s after writing its %s; keeping its result", reason, RESULT_FILE)
            return result
    else:
        reason = reason or f"the job's process exited without writing {RESULT_FILE}"
        detail = last_traceback_line(job_dir)
        if detail:
            reason = f"{reason}: {detail}"
    return write_failed_result(cfg, config, job_dir, reason, started_at)


def write_failed_result(
    cfg: Any,
    config: dict[str, Any],
    job_dir: Path,
    reason: str,
    started_at: str | None = None,
    slurm: dict[str, Any] | None = None,
) -> JobResult:
    """The row for a job whose process died: identity and config, the reason, no metrics.
    `slurm`: the SLURM job it ran as, when another process (the SLURM launcher) writes the row."""
    from quantbench.measure.environment import capture_environment  # only on this rare path

    environment = capture_environment(None)
    if slurm is not None:
        environment["slurm"] = slurm
    result = JobResult(
        status="failed",
        reason=reason,
        identity=identity_of(cfg, None),
        config=config,
        config_hash=config_hash(config),
        environment=environment,
        started_at=started_at or _now(),
        finished_at=_now(),
    )
    write_result(job_dir, result)
    log.info("[failed] model=%s precision=%s batch=%s: %s", cfg.model.name, cfg.precision.name, cfg.batch, reason)
    return result
