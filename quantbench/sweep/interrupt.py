"""Ctrl-C: an interrupted sweep ends with its summary and one line, never a Python traceback.

The running job stops where it runs: an isolated job's child and everything it started are
terminated by `quantbench.sweep.isolation` (the child leads its own process group, which a terminal's
SIGINT does not reach); an in-process job unwinds with the KeyboardInterrupt. Hydra's launcher
does not catch KeyboardInterrupt, and the end-of-sweep callback never runs, so the interrupt
reaches `quantbench.__main__.main`, which prints `after_interrupt()`'s line and exits 130
(128 + SIGINT, what a shell reports for a Ctrl-C).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

INTERRUPTED_EXIT_CODE = 130


@dataclass(frozen=True)
class RunningApp:
    directory: Path  # a sweep's directory, or a single run's
    multirun: bool


_running: RunningApp | None = None


def note_running(directory: Path, multirun: bool) -> None:
    """Called by the app as each job starts: where to look when the user interrupts."""
    global _running
    _running = RunningApp(Path(directory), multirun)


def after_interrupt() -> str:
    """Write the summary of the jobs that finished; the one line to print."""
    running = _running
    if running is None:
        return "quantbench: interrupted before the first job started; nothing was measured"
    if not running.multirun:
        return (
            f"quantbench: interrupted; the job in {running.directory} did not finish; "
            "run the same command to measure it"
        )
    from quantbench.collect.sweeps import SUMMARY_PARQUET, job_directories, write_summary
    from quantbench.jobdir import has_result

    sweep_dir = running.directory
    resume = f"resume with: quantbench resume {shlex.quote(str(sweep_dir))}"
    try:
        finished = sum(has_result(job_dir) for job_dir in job_directories(sweep_dir))
        write_summary(sweep_dir)
    except (Exception, KeyboardInterrupt) as error:
        detail = next(iter(str(error).splitlines()), "")
        return f"quantbench: interrupted; no summary written ({type(error).__name__}: {detail}); {resume}"
    jobs = "job" if finished == 1 else "jobs"
    return (
        f"quantbench: interrupted after {finished} finished {jobs} (summary: {sweep_dir / SUMMARY_PARQUET}); {resume}"
    )
