"""Isolated jobs and resumed sweeps: a job that dies takes only itself down; a re-run measures only
what is missing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from omegaconf import DictConfig, OmegaConf

import crashing_plugins
from quantbench import execute, jobdir, resume
from quantbench.jobdir import JobResult, write_result

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


def install_crashing_backends(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution (metadata only) registering the crashing backends, on the import path.

    Monkeypatching the registry would not reach an isolated job's child process; a real
    distribution on sys.path does (the child inherits the parent's import path).
    """
    dist_info = directory / "quantbench_crash_tests-0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: quantbench-crash-tests\nVersion: 0\n")
    (dist_info / "entry_points.txt").write_text(
        "[quantbench.backends]\n"
        + "".join(f"{cls.name} = crashing_plugins:{cls.__name__}\n" for cls in (crashing_plugins.DiesWhenTold, crashing_plugins.Segfaults, crashing_plugins.Hangs))
    )
    monkeypatch.syspath_prepend(str(directory))


def results_by_backend(sweep: Path) -> dict[str, dict]:
    results = [json.loads(path.read_text()) for path in sweep.glob("*/result.json")]
    return {result["identity"]["backend"]: result for result in results}


def test_a_killed_job_fails_alone_and_a_resumed_sweep_runs_only_what_is_missing(tmp_path, run_quantbench, monkeypatch):
    install_crashing_backends(tmp_path / "dist", monkeypatch)
    sweep_args = ["-m", *QUICK, "bench.isolation=process", "precision=fp32", "precision.backend=fp32,dies-when-told,bf16"]

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
        ["-m", *QUICK, "bench.isolation=process", "precision=fp32", "precision.backend=segfaults,hangs", "bench.timeout_s=20"], tmp_path
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


# Resume decisions without running any model: a stand-in for run_job records what ran.


def tiny_config(**overrides) -> DictConfig:
    config = {
        "model": {"name": "m", "family": "decoder"},
        "precision": {"name": "fp32", "backend": "fp32"},
        "hardware": {"name": "cpu", "slurm": {"partition": None}},
        "dataset": {"name": "builtin"},
        "bench": {"isolation": "none", "timeout_s": None, "max_new_tokens": 8},
        "batch": 1,
        "resume": True,
        "cache_dir": "/somewhere",
    }
    return OmegaConf.merge(config, OmegaConf.from_dotlist([f"{key}={value}" for key, value in overrides.items()]))


@pytest.fixture
def counting_run_job(monkeypatch):
    runs = []

    def fake_run_job(cfg, job_dir):
        config = jobdir.job_config(cfg)
        result = JobResult("ok", None, {"model": "m"}, config, jobdir.config_hash(config), finished_at=f"run {len(runs)}")
        write_result(job_dir, result)
        runs.append(job_dir)
        return result

    monkeypatch.setattr("quantbench.job.run_job", fake_run_job)
    return runs


def test_resume_reuses_an_ok_result_of_the_same_config_only(tmp_path, counting_run_job):
    execute.execute_job(tiny_config(), tmp_path)
    assert len(counting_run_job) == 1
    # switches that do not change a measurement do not invalidate it
    same = tiny_config(**{"bench.isolation": "process", "bench.timeout_s": 60, "cache_dir": "/elsewhere", "hardware.slurm.partition": "gpu"})
    assert execute.execute_job(same, tmp_path).finished_at == "run 0"
    assert len(counting_run_job) == 1
    # a changed setting re-measures, and the old ok result is kept aside, not in the summary
    execute.execute_job(tiny_config(**{"bench.max_new_tokens": 16}), tmp_path)
    assert len(counting_run_job) == 2
    assert len(list(tmp_path.glob("result.superseded-*.json"))) == 1
    # resume=false forces a re-run of an unchanged job
    execute.execute_job(tiny_config(**{"bench.max_new_tokens": 16, "resume": False}), tmp_path)
    assert len(counting_run_job) == 3
    from quantbench.collect import collect_sweep

    assert collect_sweep(tmp_path).height == 1


def test_a_failed_result_is_run_again_and_not_kept(tmp_path, counting_run_job):
    config = jobdir.job_config(tiny_config())
    write_result(tmp_path, JobResult("failed", "boom", {"model": "m"}, config, jobdir.config_hash(config)))
    (tmp_path / "traceback.txt").write_text("old")
    execute.execute_job(tiny_config(), tmp_path)
    assert len(counting_run_job) == 1
    assert not list(tmp_path.glob("result.superseded-*")) and not (tmp_path / "traceback.txt").exists()


def test_config_hash_ignores_only_the_listed_switches():
    config = jobdir.job_config(tiny_config())
    base = jobdir.config_hash(config)
    assert jobdir.config_hash(jobdir.job_config(tiny_config(resume=False))) == base
    assert jobdir.config_hash(jobdir.job_config(tiny_config(batch=2))) != base
    assert jobdir.config_hash(jobdir.job_config(tiny_config(**{"precision.name": "bf16"}))) != base
    assert config["bench"]["isolation"] == "none"  # hashing leaves the stored config whole


def test_a_spawned_and_a_forked_child_get_the_same_arguments(tmp_path):
    """One builder (quantbench.child.child_arguments) for the fresh interpreter's command line and
    the warm worker's forked job; the child's own parser reads them back."""
    import logging

    from quantbench.child import child_arguments
    from quantbench.isolation import child_command

    log_file = tmp_path / "sweep.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        command = child_command(tmp_path / "3")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert command[:4] == [sys.executable, "-m", "quantbench.child", str(tmp_path / "3")]
    assert command[-2:] == ["--log-file", str(log_file)]
    log_files = command[5::2]
    assert command[3:] == child_arguments(str(tmp_path / "3"), log_files)  # as the worker's request carries them


def test_unknown_isolation_mode_is_a_failed_row(tmp_path):
    result = execute.execute_job(tiny_config(**{"bench.isolation": "thread"}), tmp_path)
    assert result.status == "failed"
    assert result.reason == "unknown bench.isolation 'thread'; choose one of: process, spawn, none"
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "failed"


def test_resume_replays_the_recorded_sweep_but_not_a_forced_rerun(tmp_path):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra: [hydra.sweep.dir=old/place, hydra.mode=MULTIRUN, hydra/launcher=submitit_local]\n"
        "    task: [model=tiny-llama, 'precision=fp32,bf16', resume=false]\n"
    )
    assert resume.replay_arguments(tmp_path, ["bench.timeout_s=60"]) == [
        "-m", "model=tiny-llama", "precision=fp32,bf16", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}", "bench.timeout_s=60",
    ]
    assert resume.main([str(tmp_path / "nowhere")]) == 2


def test_isolation_is_on_by_default(compose_config, monkeypatch):
    monkeypatch.delenv("QUANTBENCH_ISOLATION", raising=False)
    assert compose_config([]).bench.isolation == "process"
    assert compose_config([]).resume is True


def test_the_child_computes_the_hash_the_parent_compares(compose_config, tmp_path):
    """The parent hashes the composed config, the child the YAML it was given: they must agree,
    or an isolated sweep would never resume."""
    composed = compose_config(["model=tiny-llama", "precision=gptq", "hardware=h100", "quality=[ppl,kld,pubmedqa]", "dataset=pubmedqa"])
    cfg = OmegaConf.masked_copy(composed, [key for key in composed if key != "hydra"])  # what a job is given
    config = jobdir.job_config(cfg)
    jobdir.write_job_config(tmp_path, config)
    child_cfg = jobdir.load_job_config(tmp_path)
    assert jobdir.job_config(child_cfg) == config
    assert jobdir.config_hash(jobdir.job_config(child_cfg)) == jobdir.config_hash(config)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_stopping_the_sweep_stops_its_running_job(tmp_path, signal_name, monkeypatch):
    """Ctrl-C (SIGINT) stops the job's process with the sweep; so does a sweep killed outright
    (SIGTERM from `kill` or SLURM, which Python does not handle): the kernel kills the orphan."""
    import signal
    import subprocess
    import time

    install_dir = tmp_path / "dist"
    install_crashing_backends(install_dir, monkeypatch)
    pid_file = tmp_path / "hung.pid"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(install_dir), str(Path(crashing_plugins.__file__).parent)]))
    environment[crashing_plugins.PID_FILE_ENV] = str(pid_file)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "quantbench", "-m", *QUICK, "bench.isolation=process", "precision=fp32",
         "precision.backend=hangs,fp32", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
