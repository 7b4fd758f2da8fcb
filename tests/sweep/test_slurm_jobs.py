"""SLURM's view of submitted jobs without a cluster: squeue's output read, the reason a failed row
gives, the warning-signal check, the links to a job's logs (on a real cluster:
tests/cluster/test_slurm_sweeps.py)."""

from __future__ import annotations

import os

from quantbench.sweep.slurm_jobs import (
    SlurmJobState,
    failure_reason,
    link_job_logs,
    parse_squeue,
    warning_signal_problem,
)

# `squeue --noheader --array --states=all --format=%i|%T|%r|%N|%l|%S|%e`, as SLURM 22.05 printed it here
SQUEUE = """\
9_2|CANCELLED|None|vm|1:00|2026-12-06T08:45:49|2026-12-06T08:46:03
9_0|COMPLETED|None|vm|1:00|2026-12-06T08:45:24|2026-12-06T08:45:39
4_1|PENDING|JobArrayTaskLimit||UNLIMITED|N/A|N/A
4_[5-7,9%1]|PENDING|JobArrayTaskLimit||UNLIMITED|N/A|N/A
2|TIMEOUT|TimeLimit|vm|1:00|2026-12-06T08:39:48|2026-12-06T08:41:08
a line squeue never prints
"""


def test_squeue_output_is_read_one_job_per_line():
    states = parse_squeue(SQUEUE)
    # pending tasks squeue may still fold into one line are each listed
    assert sorted(states) == ["2", "4_1", "4_5", "4_6", "4_7", "4_9", "9_0", "9_2"]
    assert states["4_9"].state == "PENDING" and states["4_9"].reason == "JobArrayTaskLimit"
    assert states["2"] == SlurmJobState(
        "2", "TIMEOUT", "TimeLimit", "vm", "1:00", "2026-12-06T08:39:48", "2026-12-06T08:41:08"
    )
    assert states["4_1"].node is None and states["4_1"].started_at is None and not states["4_1"].ended
    assert states["9_0"].ended and not states["9_0"].failed
    assert states["9_2"].failed


def test_the_reason_says_what_slurm_did():
    timeout = SlurmJobState("2", "TIMEOUT", "TimeLimit", "vm", "1:00")
    assert failure_reason(timeout).startswith("SLURM: TIMEOUT (time limit 1:00;")
    cancelled = SlurmJobState("9_2", "CANCELLED", None, "vm")
    assert failure_reason(cancelled) == "SLURM: CANCELLED (scancel or an administrator)"
    assert failure_reason(cancelled, accounted="CANCELLED by 1234") == "SLURM: CANCELLED by uid 1234"
    assert failure_reason(SlurmJobState("5", "NODE_FAIL", None, "gpu-07")) == "SLURM: NODE_FAIL (node gpu-07 failed)"
    assert "mem_gb" in failure_reason(SlurmJobState("6", "OUT_OF_MEMORY"))
    assert failure_reason(SlurmJobState("7", "FAILED", "NonZeroExitCode")) == "SLURM: FAILED (NonZeroExitCode)"


def test_a_warning_signal_as_long_as_the_time_limit_is_refused():
    # Hydra's default delay (120 s) with a 1-minute limit: submitit would stop every job at once
    problem = warning_signal_problem(1, 120)
    assert problem.startswith("hydra.launcher.signal_delay_s=120 is not shorter than hydra.launcher.timeout_min=1")
    assert "hydra.launcher.signal_delay_s=15" in problem
    assert warning_signal_problem(60, 120) is None and warning_signal_problem(1, 0) is None


def test_a_job_directory_links_to_the_jobs_slurm_logs(tmp_path):
    sweep = tmp_path / "sweep"
    first = sweep / ".submitit" / "12_3" / "12_3_0_log.out"
    first.parent.mkdir(parents=True)
    first.write_text("attempt 1\n")
    job_dir = sweep / "3"  # not there yet: the job has not started
    link_job_logs(job_dir, first, first.with_suffix(".err"))
    assert (job_dir / "slurm.out").read_text() == "attempt 1\n"
    assert os.readlink(job_dir / "slurm.out") == "../.submitit/12_3/12_3_0_log.out"  # relative: moves with the sweep
    assert os.readlink(job_dir / "slurm.err") == "../.submitit/12_3/12_3_0_log.err"

    again = sweep / ".submitit" / "20_0" / "20_0_0_log.out"  # the job resubmitted (resume)
    again.parent.mkdir()
    again.write_text("attempt 2\n")
    link_job_logs(job_dir, again, again.with_suffix(".err"))
    assert (job_dir / "slurm.out").read_text() == "attempt 2\n"
    assert sorted(path.name for path in job_dir.iterdir()) == ["slurm.err", "slurm.out"]

    moved = tmp_path / "moved"
    sweep.rename(moved)
    assert (moved / "3" / "slurm.out").read_text() == "attempt 2\n"
