"""quantbench's SLURM launcher places each job by its own hardware, set up as Hydra sets it up for a
sweep, without submitting (sweeps through the launchers: tests/e2e/test_cluster_sweeps.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from quantbench.config.schema import register_configs

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


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


def test_a_site_hardware_file_names_its_own_partition(tmp_path):
    """The docs/cluster.md recipe: a site file extends a built-in hardware with the cluster's names."""
    from quantbench.cli.overrides import prepare_arguments

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


def test_the_slurm_launcher_submits_each_job_under_the_number_it_is_given(monkeypatch):
    """A resumed sweep launches jobs 1 and 3 only: their directories must stay theirs."""
    launcher = launcher_for([])
    submitted = []

    class Job:
        def __init__(self, number):
            self.job_id = f"7_{number}"
            self.paths = SimpleNamespace(stdout=Path(f"{number}.out"), stderr=Path(f"{number}.err"))

    class Executor:
        def map_array(self, function, overrides, key, numbers, *rest):
            submitted.extend(numbers)
            return [Job(number) for number in numbers]

    import quantbench.sweep.slurm_jobs as slurm_jobs

    monkeypatch.setattr(launcher, "_executor", lambda placement: Executor())
    monkeypatch.setattr(launcher, "job_dir_of", lambda overrides, number: Path(str(number)))
    monkeypatch.setattr(slurm_jobs, "link_job_logs", lambda job_dir, stdout, stderr: None)
    # what the launcher waits on: each submitted job with the directory of the number it was given
    monkeypatch.setattr(
        launcher, "wait", lambda jobs, overrides, numbers: [(int(str(job.job_dir)), list(numbers)) for job in jobs]
    )
    returns = launcher.launch_jobs([["precision=fp16"], ["precision=nf4"]], [1, 3])
    assert submitted == [1, 3] and list(returns) == [(1, [1, 3]), (3, [1, 3])]
    launcher.launch([["precision=fp16"], ["precision=nf4"]], initial_job_idx=4)
    assert submitted[2:] == [4, 5]


def test_a_time_limit_within_submitits_warning_is_refused_before_anything_is_submitted(tmp_path, monkeypatch, capsys):
    """Hydra's default warning (120 s before the limit) with a 1-minute limit: submitit would stop
    every job as it starts, so the launcher says so instead of submitting."""
    from support.app import run_app

    quick = ["model=tiny-llama", "bench=quick", "precision=fp32"]
    sweep, code = run_app(
        ["-m", *quick, "hydra/launcher=quantbench_slurm", "hydra.launcher.timeout_min=1"], tmp_path, monkeypatch
    )
    assert code != 0
    assert (
        "hydra.launcher.signal_delay_s=120 is not shorter than hydra.launcher.timeout_min=1" in capsys.readouterr().err
    )
    assert not (sweep / ".submitit").exists() and not (sweep / "0").exists()
