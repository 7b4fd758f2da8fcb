"""Isolated jobs and resumed sweeps without running a model: what a resumed sweep reuses, the config
identity the parent and the child compute, the child's arguments (jobs that die in real sweeps:
tests/e2e/test_isolated_jobs.py)."""

from __future__ import annotations

import json
import sys

import pytest
from omegaconf import DictConfig, OmegaConf

from quantbench import jobdir
from quantbench.cli import resume
from quantbench.jobdir import JobResult, write_result
from quantbench.sweep import execute

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
        result = JobResult(
            "ok", None, {"model": "m"}, config, jobdir.config_hash(config), finished_at=f"run {len(runs)}"
        )
        write_result(job_dir, result)
        runs.append(job_dir)
        return result

    monkeypatch.setattr("quantbench.job.run.run_job", fake_run_job)
    return runs


def test_resume_reuses_an_ok_result_of_the_same_config_only(tmp_path, counting_run_job):
    execute.execute_job(tiny_config(), tmp_path)
    assert len(counting_run_job) == 1
    # switches that do not change a measurement do not invalidate it
    same = tiny_config(
        **{
            "bench.isolation": "process",
            "bench.timeout_s": 60,
            "cache_dir": "/elsewhere",
            "hardware.slurm.partition": "gpu",
        }
    )
    assert execute.execute_job(same, tmp_path).finished_at == "run 0"
    assert len(counting_run_job) == 1
    # a changed setting re-measures, and the old ok result is kept aside, not in the summary
    execute.execute_job(tiny_config(**{"bench.max_new_tokens": 16}), tmp_path)
    assert len(counting_run_job) == 2
    assert len(list(tmp_path.glob("result.superseded-*.json"))) == 1
    # resume=false forces a re-run of an unchanged job
    execute.execute_job(tiny_config(**{"bench.max_new_tokens": 16, "resume": False}), tmp_path)
    assert len(counting_run_job) == 3
    from quantbench.collect.sweeps import collect_sweep

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
    """One builder (quantbench.job.child.child_arguments) for the fresh interpreter's command line and
    the warm worker's forked job; the child's own parser reads them back."""
    import logging

    from quantbench.job.child import child_arguments
    from quantbench.sweep.isolation import child_command

    log_file = tmp_path / "sweep.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        command = child_command(tmp_path / "3")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert command[:4] == [sys.executable, "-m", "quantbench.job.child", str(tmp_path / "3")]
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
        "hydra:\n  overrides:\n"
        "    hydra: [hydra.sweep.dir=old/place, hydra.mode=MULTIRUN, hydra/launcher=submitit_local]\n"
        "    task: [model=tiny-llama, 'precision=fp32,bf16', resume=false]\n"
    )
    assert resume.replay_arguments(tmp_path, ["bench.timeout_s=60"]) == [
        "-m",
        "model=tiny-llama",
        "precision=fp32,bf16",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={tmp_path}",
        "bench.timeout_s=60",
    ]
    assert resume.main([str(tmp_path / "nowhere")]) == 2


def test_isolation_is_on_by_default(compose_config, monkeypatch):
    monkeypatch.delenv("QUANTBENCH_ISOLATION", raising=False)
    assert compose_config([]).bench.isolation == "process"
    assert compose_config([]).resume is True


def test_the_child_computes_the_hash_the_parent_compares(compose_config, tmp_path):
    """The parent hashes the composed config, the child the YAML it was given: they must agree,
    or an isolated sweep would never resume."""
    composed = compose_config(
        ["model=tiny-llama", "precision=gptq", "hardware=h100", "quality=[ppl,kld,pubmedqa]", "dataset=pubmedqa"]
    )
    cfg = OmegaConf.masked_copy(composed, [key for key in composed if key != "hydra"])  # what a job is given
    config = jobdir.job_config(cfg)
    jobdir.write_job_config(tmp_path, config)
    child_cfg = jobdir.load_job_config(tmp_path)
    assert jobdir.job_config(child_cfg) == config
    assert jobdir.config_hash(jobdir.job_config(child_cfg)) == jobdir.config_hash(config)
