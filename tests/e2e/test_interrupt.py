"""Ctrl-C, as a terminal sends it (SIGINT to the foreground process group), on a real sweep and a
real single run: exit 130, one line, no traceback, no process left behind, the finished jobs in
the summary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import polars as pl
import psutil
from support import TESTS, crashing_plugins

from quantbench.jobdir import RESULT_FILE
from quantbench.sweep.interrupt import INTERRUPTED_EXIT_CODE

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


def start(args: list[str], tmp_path: Path, environment: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m quantbench ARGS` in its own process group, as a shell starts a foreground job."""
    with open(tmp_path / "stdout.txt", "w") as stdout, open(tmp_path / "stderr.txt", "w") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "quantbench", *args],
            env=environment or dict(os.environ),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under CI
        )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"quantbench exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def descendants(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def interrupt(process: subprocess.Popen, tmp_path: Path) -> tuple[int, str]:
    """Ctrl-C; the exit status and stderr."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return code, (tmp_path / "stderr.txt").read_text()


def assert_gone(processes: list[psutil.Process]) -> None:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    for process in alive:
        process.kill()
    assert not alive, f"left running after Ctrl-C: {[' '.join(process.cmdline()) for process in alive]}"


def interrupted_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("quantbench: interrupted")]


def test_ctrl_c_stops_an_isolated_sweep_and_summarises_the_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    process = start(
        ["-m", *QUICK, "precision=fp32,bf16,fp16", "bench.isolation=process", f"hydra.sweep.dir={sweep}"], tmp_path
    )
    seen: dict[int, psutil.Process] = {}

    def second_job_running() -> bool:
        for child in descendants(process):
            seen.setdefault(child.pid, child)
        if not (sweep / "0" / RESULT_FILE).is_file():
            return False
        return any(_is_child_of_job(child, sweep / "1") for child in seen.values())

    wait_for(second_job_running, process, "the second job's child process")
    code, stderr = interrupt(process, tmp_path)

    assert code == INTERRUPTED_EXIT_CODE == 130
    assert "Traceback" not in stderr
    lines = interrupted_lines(stderr)
    finished = len(list(sweep.glob(f"*/{RESULT_FILE}")))
    assert lines == [
        f"quantbench: interrupted after {finished} finished job{'s' if finished != 1 else ''} "
        f"(summary: {sweep / 'summary.parquet'}); resume with: quantbench resume {sweep}"
    ]
    summary = pl.read_parquet(sweep / "summary.parquet")
    rows = {Path(row["job_dir"]).name: row for row in summary.iter_rows(named=True)}
    assert rows["0"]["status"] == "ok" and rows["0"]["precision"] == "fp32"
    assert "2" not in rows or rows["2"]["status"] != "ok"  # the sweep stopped at its second job
    assert_gone(list(seen.values()))


def _is_child_of_job(process: psutil.Process, job_dir: Path) -> bool:
    try:
        command = process.cmdline()
        if "quantbench.job.child" in command:  # a spawned child names its job directory
            return str(job_dir) in command
        # Forked by the warm worker, it has the worker's command line: its open log files name the job.
        return "quantbench.sweep.fork_server" in command and any(
            str(job_dir) in file.path for file in process.open_files()
        )
    except psutil.Error:
        return False


def test_ctrl_c_stops_a_single_run_measuring_in_process(tmp_path, monkeypatch):
    from support.distributions import install_crashing_backends

    install_dir = tmp_path / "dist"
    install_crashing_backends(install_dir, monkeypatch)
    pid_file = tmp_path / "hung.pid"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(install_dir), str(TESTS)]))
    environment[crashing_plugins.PID_FILE_ENV] = str(pid_file)
    run_dir = tmp_path / "run"
    process = start(
        [*QUICK, "precision=fp32", "precision.backend=hangs", "bench.isolation=none", f"hydra.run.dir={run_dir}"],
        tmp_path,
        environment,
    )
    wait_for(pid_file.exists, process, "the job to be loading its model")
    assert int(pid_file.read_text()) == process.pid  # measuring in the app's own process
    code, stderr = interrupt(process, tmp_path)

    assert code == 130
    assert "Traceback" not in stderr
    assert interrupted_lines(stderr) == [
        f"quantbench: interrupted; the job in {run_dir} did not finish; run the same command to measure it"
    ]
    assert not (run_dir / RESULT_FILE).exists()
