"""Sweeps through Hydra's submitit launcher: locally here, as they would run on SLURM."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from quantbench.schema import register_configs

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

QUICK = ["model=tiny-llama", "bench=quick", "analysis.report_at_end=false"]


def test_a_submitit_local_sweep_runs_every_job_and_collects_at_the_end(tmp_path, run_quantbench):
    sweep = run_quantbench(["-m", *QUICK, "precision=fp32,bf16", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20"], tmp_path)
    summary = pl.read_parquet(sweep / "summary.parquet")  # written by the end-of-sweep callback
    assert summary.height == 2
    assert summary["status"].to_list() == ["ok", "ok"], summary.select("precision", "reason")
    assert sorted(summary["precision"].to_list()) == ["bf16", "fp32"]
    for number in (0, 1):
        result = json.loads((sweep / str(number) / "result.json").read_text())
        assert result["status"] == "ok"
    assert list((sweep / ".submitit").iterdir()), "submitit kept no record of its jobs"


def launcher_for(overrides: list[str]):
    """quantbench's SLURM launcher, set up as Hydra sets it up for a sweep, without submitting."""
    from hydra._internal.callbacks import Callbacks
    from hydra.types import HydraContext

    from hydra_plugins.quantbench_launcher.quantbench_launcher import HardwareSlurmLauncher

    register_configs()
    initialize_config_module(config_module="quantbench.conf", version_base="1.3")
    config = compose("config", overrides=["hydra/launcher=quantbench_slurm", *overrides], return_hydra_config=True)
    launcher = HardwareSlurmLauncher(submitit_folder="unused", max_num_timeout=0)
    context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks())
    launcher.setup(hydra_context=context, task_function=lambda cfg: None, config=config)
    return launcher


def test_the_slurm_launcher_places_each_job_by_its_own_hardware():
    launcher = launcher_for([])
    jobs = [
        ["precision=fp16", "hardware=h100"],
        ["precision=fp16", "hardware=l40s", "hardware.slurm.partition=ada"],
        ["precision=nf4", "hardware=h100"],
        ["precision=nf4", "hardware=cpu"],
    ]
    groups = launcher.placement_groups(jobs)
    assert [positions for _, positions in groups] == [[0, 2], [1], [3]]
    h100, l40s, cpu = (placement for placement, _ in groups)
    assert h100["gres"] == "gpu:h100:1" and h100["partition"] is None
    assert l40s["gres"] == "gpu:l40s:1" and l40s["partition"] == "ada"
    assert cpu["gres"] is None


def test_the_slurm_launcher_groups_run_on_this_machine_with_cluster_local(tmp_path, run_quantbench):
    sweep = run_quantbench(
        ["-m", *QUICK, "precision=fp32", "bench.isolation=none", "hardware=cpu", "hardware.slurm.partition=small,large",
         "hydra/launcher=quantbench_slurm", "+hydra.launcher.cluster=local", "hydra.launcher.timeout_min=20"],
        tmp_path,
    )
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary.height == 2 and summary["status"].to_list() == ["ok", "ok"], summary.select("reason")
    # one submission per placement: two job arrays, one job each
    arrays = {path.name.split("_")[0] for path in (sweep / ".submitit").iterdir() if path.name[0].isdigit()}
    assert len(arrays) == 2, arrays


def test_a_site_hardware_file_names_its_own_partition(tmp_path):
    """The docs/cluster.md recipe: a site file extends a built-in hardware with the cluster's names."""
    from quantbench.overrides import prepare_arguments

    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "site-h100.yaml").write_text(
        "defaults:\n  - h100\n  - _self_\n\nslurm:\n  partition: gpu-h100\n  gres: gpu:nvidia_h100_80gb:1\n"
    )
    searchpath = f"hydra.searchpath=[file://{tmp_path}]"
    arguments = ["-m", "hardware=site-h100,h100", searchpath]
    assert prepare_arguments(arguments) == arguments  # the site's option is Hydra's to find, not an unknown one
    launcher = launcher_for([searchpath])
    (site, _), (builtin, _) = launcher.placement_groups([["hardware=site-h100"], ["hardware=h100"]])
    assert site["partition"] == "gpu-h100" and site["gres"] == "gpu:nvidia_h100_80gb:1"
    assert builtin["partition"] is None and builtin["gres"] == "gpu:h100:1"
