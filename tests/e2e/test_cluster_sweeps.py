"""Real sweeps through Hydra's submitit launchers, locally here, as they would run on SLURM
(the placement of jobs: tests/sweep/test_slurm_launcher.py)."""

from __future__ import annotations

import json

import polars as pl
import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


# ~25 s on 2 cores; the SLURM launcher's test below runs through submitit's local executor by default.
@pytest.mark.slow
def test_a_submitit_local_sweep_runs_every_job_and_collects_at_the_end(tmp_path, run_quantbench):
    sweep = run_quantbench(
        ["-m", *QUICK, "precision=fp32,bf16", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20"],
        tmp_path,
    )
    summary = pl.read_parquet(sweep / "summary.parquet")  # written by the end-of-sweep callback
    assert summary.height == 2
    assert summary["status"].to_list() == ["ok", "ok"], summary.select("precision", "reason")
    assert sorted(summary["precision"].to_list()) == ["bf16", "fp32"]
    for number in (0, 1):
        result = json.loads((sweep / str(number) / "result.json").read_text())
        assert result["status"] == "ok"
    assert list((sweep / ".submitit").iterdir()), "submitit kept no record of its jobs"


def test_the_slurm_launcher_groups_run_on_this_machine_with_cluster_local(tmp_path, run_quantbench):
    sweep = run_quantbench(
        [
            "-m",
            *QUICK,
            "precision=fp32",
            "bench.isolation=none",
            "hardware=cpu",
            "hardware.slurm.partition=small,large",
            "hydra/launcher=quantbench_slurm",
            "+hydra.launcher.cluster=local",
            "hydra.launcher.timeout_min=20",
        ],
        tmp_path,
    )
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary.height == 2 and summary["status"].to_list() == ["ok", "ok"], summary.select("reason")
    # one submission per placement: two job arrays, one job each
    arrays = {path.name.split("_")[0] for path in (sweep / ".submitit").iterdir() if path.name[0].isdigit()}
    assert len(arrays) == 2, arrays
