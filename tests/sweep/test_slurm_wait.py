"""How the SLURM launcher decides that a job ended and whether its own result stands, with submitit's
result pickles and SLURM's states made by hand (on a real cluster: tests/cluster/test_slurm_sweeps.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus
from submitit.core.utils import UncompletedJobError, cloudpickle_dump

from quantbench.jobdir import JobResult, write_result
from quantbench.sweep import slurm_wait
from quantbench.sweep.slurm_jobs import SlurmJobState
from quantbench.sweep.slurm_wait import END_GRACE_S, SubmittedJob, _end_of, wait_for_jobs

NOW = time.time()


def submitted(tmp_path: Path, job_id: str = "12_0") -> SubmittedJob:
    folder = tmp_path / ".submitit" / job_id
    folder.mkdir(parents=True)
    job = SimpleNamespace(job_id=job_id, paths=SimpleNamespace(result_pickle=folder / f"{job_id}_0_result.pkl"))
    return SubmittedJob(job, tmp_path / "0", submitted_at=NOW)


def pickled(job: SubmittedJob, outcome: str, value) -> None:
    cloudpickle_dump((outcome, value), job.job.paths.result_pickle)


def own_result(job: SubmittedJob, status: str, reason: str | None = None, age_s: float = 0.0) -> None:
    write_result(job.job_dir, JobResult(status=status, reason=reason, identity={}, config={}, config_hash="h"))
    if age_s:  # written by an earlier run
        stamp = NOW - age_s
        os.utime(job.job_dir / "result.json", (stamp, stamp))


def state(name: str, job_id: str = "12_0") -> SlurmJobState:
    return SlurmJobState(job_id, name, None, "vm", "1:00", "2026-12-06T08:39:48")


def test_a_job_that_returned_keeps_its_own_result_new_or_reused(tmp_path):
    job = submitted(tmp_path)
    pickled(job, "success", JobReturn(status=JobStatus.COMPLETED, _return_value=None))
    own_result(job, "ok", age_s=3600)  # reused by the job (same config): written by an earlier run
    end = _end_of(0, job, None, NOW)  # no need to ask SLURM
    assert end is not None and end.reason is None and end.returned.status == JobStatus.COMPLETED


def test_a_job_cancelled_before_it_wrote_anything_gets_slurms_reason_not_an_earlier_runs(tmp_path):
    job = submitted(tmp_path)
    own_result(job, "failed", "out of memory last week", age_s=3600)
    assert _end_of(0, job, state("PENDING"), NOW) is None
    end = _end_of(0, job, state("CANCELLED"), NOW)
    assert end.reason == "SLURM: CANCELLED (scancel or an administrator)" and not end.wrote_result


def test_slurms_reason_comes_first_and_the_jobs_own_follows(tmp_path):
    job = submitted(tmp_path)
    own_result(job, "failed", "the job's process was killed by SIGTERM")  # SLURM's SIGTERM at the limit
    pickled(job, "success", JobReturn(status=JobStatus.COMPLETED, _return_value=None))
    assert _end_of(0, job, state("RUNNING"), NOW) is None  # how it ended: SLURM has not said yet
    end = _end_of(0, job, state("TIMEOUT"), NOW)
    assert end.reason.startswith("SLURM: TIMEOUT (time limit 1:00;")
    assert end.reason.endswith("; the job: the job's process was killed by SIGTERM") and end.wrote_result


def test_submitits_stop_at_slurms_warning_signal_is_a_timeout(tmp_path):
    job = submitted(tmp_path)
    stopped = UncompletedJobError("Job not requeued because: timed-out too many times.")
    pickled(job, "success", JobReturn(status=JobStatus.FAILED, _return_value=stopped))
    end = _end_of(0, job, state("COMPLETED"), NOW)
    assert end.reason.startswith("SLURM: TIMEOUT (time limit 1:00; submitit stopped the job at SLURM's warning")


def test_a_job_that_raised_names_the_error(tmp_path):
    job = submitted(tmp_path)
    pickled(job, "error", "Traceback (most recent call last):\n  ...\nRuntimeError: disk full\n")
    end = _end_of(0, job, state("FAILED"), NOW)
    assert end.reason == "SLURM: FAILED; the job: RuntimeError: disk full"


def test_a_completed_job_without_a_result_gets_time_for_a_slow_filesystem_then_a_reason(tmp_path):
    job = submitted(tmp_path)
    assert _end_of(0, job, state("COMPLETED"), NOW) is None
    end = _end_of(0, job, state("COMPLETED"), NOW + END_GRACE_S + 1)
    assert end.reason == "the job ended without writing result.json (SLURM state COMPLETED)"


def test_a_job_the_controller_no_longer_lists_ends_with_a_reason(tmp_path, monkeypatch):
    job = submitted(tmp_path)
    job.forgotten_polls = slurm_wait.FORGOTTEN_POLLS
    # a pending array task that scancel dropped leaves no record at all (without accounting)
    job.last_state = state("PENDING")
    assert _end_of(0, job, None, NOW).reason == "SLURM: CANCELLED (scancel or an administrator)"
    job.last_state = state("RUNNING")
    assert _end_of(0, job, None, NOW).reason == (
        "the job ended without writing result.json "
        "(SLURM no longer lists it: it ended over MinJobAge ago, and accounting is off)"
    )
    monkeypatch.setattr(slurm_wait, "accounted_state", lambda job_id: "NODE_FAIL")  # accounting's record, where on
    assert _end_of(0, job, None, NOW).reason == "SLURM: NODE_FAIL (node vm failed)"


def test_waiting_yields_each_end_as_slurm_reports_it(tmp_path, monkeypatch):
    first, second = submitted(tmp_path / "a", "12_0"), submitted(tmp_path / "b", "12_1")
    answers = iter(
        [
            None,  # the controller did not answer: asked again
            {"12_0": state("RUNNING", "12_0"), "12_1": state("RUNNING", "12_1")},
            {"12_0": state("CANCELLED", "12_0"), "12_1": state("RUNNING", "12_1")},
            {"12_1": state("COMPLETED", "12_1")},
        ]
    )

    def answer(array_ids):
        assert sorted(set(array_ids)) == ["12"]  # one squeue call per array, not per job
        reply = next(answers)
        if reply and "12_1" in reply and reply["12_1"].state == "COMPLETED":
            pickled(second, "success", JobReturn(status=JobStatus.COMPLETED, _return_value=None))
            own_result(second, "ok")
        return reply

    monkeypatch.setattr(slurm_wait, "query_states", answer)
    monkeypatch.setattr(slurm_wait, "MIN_STATE_POLL_S", 0.0)
    monkeypatch.setattr(slurm_wait, "POLL_S", 0.0)
    ends = list(wait_for_jobs([first, second]))
    assert [(end.position, end.reason) for end in ends] == [
        (0, "SLURM: CANCELLED (scancel or an administrator)"),
        (1, None),
    ]


@pytest.fixture(autouse=True)
def no_accounting(monkeypatch):
    """sacct is not asked here: the reasons are those of a cluster without accounting."""
    monkeypatch.setattr(slurm_wait, "accounted_state", lambda job_id: None)
