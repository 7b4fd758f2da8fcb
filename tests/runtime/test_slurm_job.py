"""The SLURM job a process runs in, from SLURM's environment variables, and the summary columns it
gives a result (the real jobs: tests/cluster/test_slurm_sweeps.py)."""

from __future__ import annotations

from quantbench.collect.sweeps import collect_sweep
from quantbench.jobdir import JobResult, write_result
from quantbench.runtime.slurm_job import slurm_columns, slurm_job, submitted_slurm_job

ARRAY_TASK = {
    "SLURM_JOB_ID": "128",
    "SLURM_ARRAY_JOB_ID": "125",
    "SLURM_ARRAY_TASK_ID": "3",
    "SLURMD_NODENAME": "gpu-07",
    "SLURM_JOB_NODELIST": "gpu-[07]",
}


def test_an_array_task_is_named_as_squeue_and_scancel_name_it():
    job = slurm_job(ARRAY_TASK)
    assert job == {"job_id": "125_3", "raw_job_id": "128", "array_job_id": "125", "array_task_id": 3, "node": "gpu-07"}
    # the record the launcher writes for a job that SLURM ended has the same keys and values
    assert submitted_slurm_job("125_3", "gpu-07") | {"raw_job_id": "128"} == job


def test_a_plain_job_and_no_job():
    assert slurm_job({"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "n1"}) == {
        "job_id": "77",
        "raw_job_id": "77",
        "array_job_id": None,
        "array_task_id": None,
        "node": "n1",
    }
    assert slurm_job({"HOME": "/root"}) is None
    assert submitted_slurm_job("77", None)["raw_job_id"] == "77"


def _result(job_dir, environment):
    write_result(
        job_dir,
        JobResult(
            status="ok",
            reason=None,
            identity={"model": "m", "precision": "fp32", "batch": 1},
            config={"batch": 1},
            config_hash="h",
            environment=environment,
            metrics={"qps": 1.0},
        ),
    )


def test_the_summary_has_slurm_columns_only_for_jobs_that_ran_under_slurm(tmp_path):
    _result(tmp_path / "local" / "0", {"hostname": "laptop"})
    assert not {"slurm_job_id", "slurm_node"} & set(collect_sweep(tmp_path / "local").columns)

    _result(tmp_path / "cluster" / "0", {"slurm": slurm_job(ARRAY_TASK)})
    _result(tmp_path / "cluster" / "1", {"hostname": "laptop"})  # a job of the sweep run elsewhere
    frame = collect_sweep(tmp_path / "cluster")
    assert frame["slurm_job_id"].to_list() == ["125_3", None]
    assert frame["slurm_node"].to_list() == ["gpu-07", None]
    assert slurm_columns({"slurm": "not a record"}) == {}
