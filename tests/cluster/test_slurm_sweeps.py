"""Sweeps on a real SLURM cluster through `hydra/launcher=quantbench_slurm`: SLURM schedules every
job (`bash benchmarks/slurm/local_cluster.sh start` makes a one-node cluster here; `.ci/run` starts
it before `pytest -m cluster`). Skipped, with the reason, without an idle node.

The jobs run in SLURM's processes, which inherit this process's environment through sbatch (the
test cache, QUANTBENCH_ISOLATION, PYTHONPATH). On 2 cores the node runs two jobs at once; the
whole tier takes about 4 minutes, half of it the time-limit case (a 1-minute limit).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from hydra.core.global_hydra import GlobalHydra

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

pytestmark = pytest.mark.cluster

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]
SLURM = ["hydra/launcher=quantbench_slurm", "hydra.launcher.timeout_min=10"]
SLURM_ONLY_COLUMNS = {"slurm_job_id", "slurm_node"}
# A job that measures for 10 minutes: bench.min_seconds keeps the timed phase going (quick's
# iteration count is raised so that it is not the limit).
LONG = ["bench.max_seconds=600", "bench.max_iterations=1000000"]


@pytest.fixture(scope="module")
def slurm_node() -> str:
    """The idle node of the running cluster, or a skip saying why there is none."""
    start = "start one with `bash benchmarks/slurm/local_cluster.sh start`"
    if shutil.which("sinfo") is None:
        pytest.skip(f"no SLURM here (sinfo not found); {start}")
    done = subprocess.run(["sinfo", "--noheader", "--format=%N %T"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"SLURM does not answer (sinfo: {done.stderr.strip()}); {start}")
    nodes = [line.split() for line in done.stdout.splitlines() if line.strip()]
    idle = [name for name, state in nodes if state in ("idle", "mixed")]
    if not idle:
        pytest.skip(f"no idle SLURM node (sinfo: {done.stdout.strip() or 'no nodes'}); {start}")
    return idle[0]


def job_results(sweep: Path) -> dict[int, dict]:
    return {int(path.parent.name): json.loads(path.read_text()) for path in sweep.glob("*/result.json")}


def slurm_id_of(job_dir: Path, timeout_s: float = 60) -> str:
    """The SLURM id of a job, from the link to its log the launcher makes at submission."""
    deadline = time.monotonic() + timeout_s
    while not (job_dir / "slurm.out").is_symlink():
        assert time.monotonic() < deadline, f"no slurm.out link in {job_dir} after {timeout_s} s"
        time.sleep(0.2)
    return (job_dir / "slurm.out").readlink().parent.name  # ../.submitit/<array>_<task>/...


def squeue_state(job_id: str) -> str:
    done = subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T"], **TEXT)
    return done.stdout.strip()


TEXT = {"capture_output": True, "text": True, "timeout": 30}


def in_background(target, *args) -> threading.Thread:
    """Run a helper beside the sweep (which blocks this thread); its assertion errors come back on join."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def joined(thread: threading.Thread) -> None:
    thread.join(timeout=60)
    if thread.errors:  # type: ignore[attr-defined]
        raise thread.errors[0]  # type: ignore[attr-defined]


def cancel_when(job_dir: Path, state: str) -> None:
    """`scancel` the job of `job_dir` once SLURM reports it in `state` (RUNNING, PENDING)."""
    job_id = slurm_id_of(job_dir)
    deadline = time.monotonic() + 240
    while squeue_state(job_id) != state:
        assert time.monotonic() < deadline, f"job {job_id} never reached {state}"
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], check=True, timeout=30)


def submitted_tasks(sweep: Path) -> set[str]:
    """The array tasks submitit holds a folder for: one per job submitted."""
    return {path.name for path in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+_\d+", path.name)}


def test_a_sweep_on_slurm_has_the_local_columns_each_jobs_slurm_id_and_node_and_its_logs(
    slurm_node, tmp_path, run_quantbench
):
    sweep_args = ["-m", *QUICK, "precision=fp32,bf16", "batch=1,2"]
    slurm_sweep = run_quantbench([*sweep_args, *SLURM], tmp_path / "slurm")
    local_sweep = run_quantbench(sweep_args, tmp_path / "local")

    on_slurm = pl.read_parquet(slurm_sweep / "summary.parquet")
    local = pl.read_parquet(local_sweep / "summary.parquet")
    assert on_slurm.height == 4 and on_slurm["status"].to_list() == ["ok"] * 4, on_slurm.select("reason")
    assert set(on_slurm.columns) - SLURM_ONLY_COLUMNS == set(local.columns)
    assert not SLURM_ONLY_COLUMNS & set(local.columns), "a sweep on one machine has no SLURM columns"
    job_ids = on_slurm["slurm_job_id"].to_list()
    assert all(re.fullmatch(r"\d+_[0-3]", job_id) for job_id in job_ids) and len(set(job_ids)) == 4, job_ids
    assert on_slurm["slurm_node"].to_list() == [slurm_node] * 4

    for row in on_slurm.iter_rows(named=True):
        job_dir = Path(row["job_dir"])
        out, err = job_dir / "slurm.out", job_dir / "slurm.err"
        assert out.is_file() and err.is_file(), f"no SLURM logs in {job_dir}"
        # the job's own stdout: submitit names the job it ran as
        assert f"job_id={row['slurm_job_id']}" in out.read_text(), out.read_text()[-2000:]
        assert "Job completed successfully" in err.read_text() + out.read_text()


# ~1.5 min: the time limit is 1 minute, and SLURM checks limits every 30 s.
def test_a_job_past_its_time_limit_and_a_cancelled_job_are_failed_rows_with_slurms_reason(
    slurm_node, tmp_path, run_quantbench
):
    sweep = tmp_path / "multirun"
    # job 0 measures briefly; jobs 1 and 2 would measure for 10 minutes: 1 meets its time limit, 2 is cancelled
    cancel = in_background(cancel_when, sweep / "2", "RUNNING")
    run_quantbench(
        [
            "-m",
            *QUICK,
            *LONG,
            "bench.min_seconds=0,600,601",
            "hydra/launcher=quantbench_slurm",
            "hydra.launcher.timeout_min=1",
            "hydra.launcher.signal_delay_s=0",  # SLURM itself ends the job at its limit
        ],
        tmp_path,
    )
    joined(cancel)
    results = job_results(sweep)
    assert results[0]["status"] == "ok", results[0]["reason"]
    assert results[1]["status"] == "failed" and results[1]["reason"].startswith("SLURM: TIMEOUT (time limit 1:00"), (
        results[1]["reason"]
    )
    assert results[2]["status"] == "failed" and results[2]["reason"].startswith("SLURM: CANCELLED"), results[2][
        "reason"
    ]
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert sorted(summary["status"].to_list()) == ["failed", "failed", "ok"]
    assert summary["slurm_node"].to_list() == [slurm_node] * 3  # failed rows name their job and node too
    assert summary["slurm_job_id"].null_count() == 0
    assert squeue_state(results[1]["environment"]["slurm"]["job_id"]) == "TIMEOUT"


def test_resume_submits_only_the_missing_and_failed_jobs(slurm_node, tmp_path, run_quantbench, monkeypatch):
    sweep = tmp_path / "multirun"
    # One job at a time, so that job 2 is still pending when it is cancelled: a failed row of a job
    # that never started.
    cancel = in_background(cancel_when, sweep / "2", "PENDING")
    run_quantbench(["-m", *QUICK, "precision=fp32,bf16,fp16", *SLURM, "hydra.launcher.array_parallelism=1"], tmp_path)
    joined(cancel)
    first = job_results(sweep)
    assert [first[number]["status"] for number in (0, 1, 2)] == ["ok", "ok", "failed"], first[2]["reason"]
    assert first[2]["reason"].startswith("SLURM: CANCELLED")
    (sweep / "1" / "result.json").unlink()  # job 1 now lacks its result, as if it never finished
    kept = (sweep / "0" / "result.json").read_text()
    before = submitted_tasks(sweep)

    from quantbench.cli.resume import main as resume

    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    GlobalHydra.instance().clear()
    try:
        assert resume([str(sweep)]) == 0
    finally:
        GlobalHydra.instance().clear()

    resubmitted = submitted_tasks(sweep) - before
    assert len(resubmitted) == 2, f"resume submitted {sorted(resubmitted)}; expected jobs 1 and 2 only"
    assert {slurm_id_of(sweep / str(number)) for number in (1, 2)} == resubmitted  # under their own numbers
    assert (sweep / "0" / "result.json").read_text() == kept  # the ok job was neither submitted nor touched
    second = job_results(sweep)
    assert [second[number]["status"] for number in (0, 1, 2)] == ["ok", "ok", "ok"]


def count_running(array_of: Path, seen: list[int], stop: threading.Event) -> None:
    """Sample how many tasks of the sweep's array run at once, until `stop`."""
    array_id = slurm_id_of(array_of).split("_")[0]
    while not stop.is_set():
        done = subprocess.run(
            ["squeue", "--noheader", "--array", f"--jobs={array_id}", "--states=RUNNING", "--format=%i"], **TEXT
        )
        seen.append(len(done.stdout.split()))
        time.sleep(0.3)


def test_array_parallelism_bounds_how_many_jobs_run_at_once(slurm_node, tmp_path, run_quantbench):
    sweep = tmp_path / "multirun"
    seen: list[int] = []
    stop = threading.Event()
    sampler = in_background(count_running, sweep / "0", seen, stop)
    try:
        run_quantbench(["-m", *QUICK, "precision=fp32,bf16", *SLURM, "hydra.launcher.array_parallelism=1"], tmp_path)
    finally:
        stop.set()
    joined(sampler)
    assert "--array=0-1%1" in next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert max(seen) == 1, f"running at once: {seen}"  # two cores would run both at once otherwise
    results = job_results(sweep)
    assert [results[number]["status"] for number in (0, 1)] == ["ok", "ok"]
    spans = sorted((result["started_at"], result["finished_at"]) for result in results.values())
    assert all(finished <= started for (_, finished), (started, _) in zip(spans, spans[1:])), spans
