"""The warm worker in real sweeps: a job that segfaults and a job that is SIGKILLed become failed rows,
the job after them still runs, forked from the same worker; no worker outlives its sweep; a sweep's
log opens without torch's import-time notices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import crashing_plugins
from support.app import results_by_backend, run_app
from support.distributions import install_crashing_backends

from quantbench.sweep import warm_worker

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


@pytest.fixture(scope="module")
def crash_sweep(tmp_path_factory):
    """One isolated sweep: a job that segfaults, one that is SIGKILLed while loading, then fp32."""
    out = tmp_path_factory.mktemp("warm-worker")
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_crashing_backends(out / "dist", monkeypatch)
        monkeypatch.setenv(crashing_plugins.DIE_ENV, "1")
        worker_before = warm_worker._worker  # an earlier test's, if any: the sweep may replace it
        before = worker_before.jobs_started if worker_before is not None else 0
        sweep, code = run_app(
            [
                "-m",
                *QUICK,
                "bench.isolation=process",
                "precision=fp32",
                "precision.backend=segfaults,dies-when-told,fp32",
            ],
            out,
            monkeypatch,
        )
    assert code == 0
    return sweep, worker_before, before


def test_a_segfault_and_a_kill_leave_the_worker_and_the_next_job_running(crash_sweep):
    sweep, worker_before, jobs_before = crash_sweep
    results = results_by_backend(sweep)
    assert "killed by SIGSEGV" in results["segfaults"]["reason"]
    assert "killed by SIGKILL" in results["dies-when-told"]["reason"]
    assert results["fp32"]["status"] == "ok", results["fp32"]["reason"]
    worker = warm_worker._worker
    assert warm_worker._unavailable is None and worker is not None and worker.alive
    started_before = jobs_before if worker is worker_before else 0
    assert worker.jobs_started - started_before == 3  # all three forked by the one worker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.mark.slow  # a worker start of its own; test_isolation's stopped sweep covers its forked job
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_the_worker_dies_with_its_sweep(tmp_path):
    """A sweep's process killed outright (kill -9) takes its worker with it: no orphan."""
    script = (
        "import os, sys, time\n"
        "from quantbench.sweep.isolation import child_environment\n"
        "from quantbench.sweep.warm_worker import WarmWorker\n"
        "worker = WarmWorker(child_environment())\n"
        "print(worker.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    sweep = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(sweep.stdout.readline())
        assert _alive(worker_pid)
    finally:
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
    deadline = time.monotonic() + 30
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker_pid), f"warm worker {worker_pid} outlived its sweep"


# ~18 s on 2 cores; tests/runtime/test_logs.py checks the filter the worker installs by default.
@pytest.mark.slow
def test_a_sweep_log_opens_without_torchs_import_time_notices(tmp_path):
    """torch logs "<enum 'KernelPreference'> is an Enum subclass ..." (torch/utils/_pytree.py) for
    two of torchao's enums when torchao is imported, which the warm worker does for every sweep: a
    user's log opened with them. The sweep's output and its log files hold no such line."""
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "quantbench",
            "-m",
            *QUICK,
            "precision=fp32",
            "bench.isolation=process",
            f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "warm worker ready" in output  # the job was forked from the worker, which imported torchao
    logs = output + "".join(path.read_text() for path in sweep.rglob("*.log"))
    assert not [line for line in logs.splitlines() if "_pytree" in line or "is an Enum subclass" in line]
