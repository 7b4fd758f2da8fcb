"""Isolated jobs in real sweeps: a job that dies takes only itself down, a resumed sweep measures only
what is missing, and a stopped sweep stops its running job."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from support import TESTS, crashing_plugins
from support.app import results_by_backend
from support.distributions import install_crashing_backends

from quantbench.cli import resume

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


def test_a_killed_job_fails_alone_and_a_resumed_sweep_runs_only_what_is_missing(tmp_path, run_quantbench, monkeypatch):
    install_crashing_backends(tmp_path / "dist", monkeypatch)
    sweep_args = [
        "-m",
        *QUICK,
        "bench.isolation=process",
        "precision=fp32",
        "precision.backend=fp32,dies-when-told,bf16",
    ]

    monkeypatch.setenv(crashing_plugins.DIE_ENV, "1")
    sweep = run_quantbench(sweep_args, tmp_path)
    first = pl.read_parquet(sweep / "summary.parquet")
    assert first.height == 3
    rows = {row["backend"]: row for row in first.iter_rows(named=True)}
    assert rows["fp32"]["status"] == "ok" and rows["bf16"]["status"] == "ok"
    assert rows["dies-when-told"]["status"] == "failed"
    assert "killed by SIGKILL" in rows["dies-when-told"]["reason"]
    before = results_by_backend(sweep)
    # Another job never finished at all: its directory has no result.
    bf16_dir = Path(rows["bf16"]["job_dir"])
    (bf16_dir / "result.json").unlink()

    monkeypatch.delenv(crashing_plugins.DIE_ENV)
    # `quantbench resume DIR`: the same sweep (overrides from DIR/multirun.yaml) into the same directory
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main_from_cli sets it
    assert resume.main([str(sweep)]) == 0
    after = results_by_backend(sweep)
    # fp32 was reused as it was; the killed job and the unfinished one ran again
    assert after["fp32"] == before["fp32"]
    assert after["dies-when-told"]["status"] == "ok"
    assert after["dies-when-told"]["started_at"] >= before["dies-when-told"]["finished_at"]
    assert after["bf16"]["status"] == "ok" and after["bf16"]["started_at"] >= before["bf16"]["finished_at"]
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary.height == 3 and summary["status"].to_list() == ["ok"] * 3
    assert sorted(summary["backend"].to_list()) == ["bf16", "dies-when-told", "fp32"]
    assert summary["job_dir"].n_unique() == 3


def test_a_segfault_and_a_hang_become_failed_rows(tmp_path, run_quantbench, monkeypatch):
    install_crashing_backends(tmp_path / "dist", monkeypatch)
    pid_file = tmp_path / "hung.pid"
    monkeypatch.setenv(crashing_plugins.PID_FILE_ENV, str(pid_file))
    sweep = run_quantbench(
        [
            "-m",
            *QUICK,
            "bench.isolation=process",
            "precision=fp32",
            "precision.backend=segfaults,hangs",
            "bench.timeout_s=20",
        ],
        tmp_path,
    )
    rows = {row["backend"]: row for row in pl.read_parquet(sweep / "summary.parquet").iter_rows(named=True)}
    assert rows["segfaults"]["status"] == "failed" and "killed by SIGSEGV" in rows["segfaults"]["reason"]
    assert rows["hangs"]["status"] == "failed" and rows["hangs"]["reason"].startswith("timed out after 20 s")
    # the hung process was really in load() when it was stopped, and is gone now
    hung_pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)


def test_in_process_isolation_runs_the_job_here(tmp_path, run_quantbench):
    run_dir = run_quantbench([*QUICK, "precision=fp32", "bench.isolation=none"], tmp_path)
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "ok"
    assert not (run_dir / "job.yaml").exists()  # no child was started
    assert result["config"]["bench"]["isolation"] == "none"


# SIGTERM (a scheduler's stop) is the slow one: SIGINT runs by default, the same path with another signal.
@pytest.mark.parametrize("signal_name", ["SIGINT", pytest.param("SIGTERM", marks=pytest.mark.slow)])
def test_stopping_the_sweep_stops_its_running_job(tmp_path, signal_name, monkeypatch):
    """Ctrl-C (SIGINT) stops the job's process with the sweep; so does a sweep killed outright
    (SIGTERM from `kill` or SLURM, which Python does not handle): the kernel kills the orphan."""
    import signal
    import subprocess
    import time

    install_dir = tmp_path / "dist"
    install_crashing_backends(install_dir, monkeypatch)
    pid_file = tmp_path / "hung.pid"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(install_dir), str(TESTS)]))
    environment[crashing_plugins.PID_FILE_ENV] = str(pid_file)
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quantbench",
            "-m",
            *QUICK,
            "bench.isolation=process",
            "precision=fp32",
            "precision.backend=hangs,fp32",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under CI
    )
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        hung_pid = int(pid_file.read_text())
        sweep.send_signal(getattr(signal, signal_name))
        assert sweep.wait(timeout=60) != 0
        for _ in range(50):  # the kernel delivers the parent-death signal right after the exit
            try:
                os.kill(hung_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(hung_pid, signal.SIGKILL)
            pytest.fail(f"the job's process outlived its sweep after {signal_name}")
    finally:
        if sweep.poll() is None:
            sweep.kill()
