"""What keeps a job's harness cost near zero (docs/results/sweep_overhead.md): the help listing is
composed only for --help, each job's config is composed once, the warm worker starts with the
sweep's process (and is stopped when its jobs run elsewhere), holds the plugin discoveries for
jobs on its own import path only, and refuses to fork once a thread pool has started in it.
Whole sweeps through the worker: tests/e2e/test_warm_worker_sweeps.py, tests/e2e/test_sweep.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.types import HydraContext
from omegaconf import OmegaConf

from quantbench.cli import help as app_help
from quantbench.config import registry
from quantbench.job import discoveries
from quantbench.measure import hardware_facts
from quantbench.sweep import composed_once, early_worker, fork_server, warm_worker


def _listing() -> str:
    return str(OmegaConf.create({"text": f"${{{app_help.RESOLVER}:}}"}).text)


def test_the_group_listing_is_composed_only_when_help_prints_it(monkeypatch):
    monkeypatch.setattr(app_help, "config_groups_text", lambda: "precision: fp16, nf4")
    try:
        app_help.register_help_resolver(["-m", "precision=fp16,nf4"])
        assert _listing() == ""
        app_help.register_help_resolver(["--help", "batch=8"])
        assert _listing() == "precision: fp16, nf4"
        app_help.register_help_resolver(["-h"])
        assert _listing() == "precision: fp16, nf4"
    finally:
        app_help.register_help_resolver([])  # not the stand-in listing, for later tests


class CountingLoader:
    def __init__(self):
        self.composed: list[tuple[str, ...]] = []

    def load_sweep_config(self, master_config, sweep_overrides):
        self.composed.append(tuple(sweep_overrides))
        if "batch=oops" in sweep_overrides:
            raise ValueError("batch: 'oops' is not an int")
        return {"overrides": list(sweep_overrides)}

    def list_groups(self, parent):
        return ["model", "precision"]


def test_the_launcher_takes_each_config_the_validation_composed():
    loader = CountingLoader()
    kept = composed_once.KeptConfigs(loader)
    batch = [["precision=fp16", "batch=1"], ["precision=nf4", "batch=1"]]
    kept.validate({}, batch)
    assert [kept.load_sweep_config({}, list(job)) for job in batch] == [{"overrides": job} for job in batch]
    assert len(loader.composed) == 2  # not 4
    kept.load_sweep_config({}, batch[0])  # handed out once: a third request composes again
    assert len(loader.composed) == 3
    assert kept.list_groups("") == ["model", "precision"]  # the rest is the loader's


def test_a_batch_that_does_not_compose_fails_its_validation_and_a_large_one_is_not_kept(monkeypatch):
    kept = composed_once.KeptConfigs(CountingLoader())
    with pytest.raises(ValueError, match="oops"):
        kept.validate({}, [["batch=1"], ["batch=oops"]])
    monkeypatch.setattr(composed_once, "KEEP_MAX_JOBS", 1)
    kept.validate({}, [["batch=1"], ["batch=2"]])
    assert kept.kept == {}


def test_only_a_launcher_that_runs_jobs_here_shares_the_configs():
    loader = CountingLoader()

    def sweeper_with(launcher):
        launcher.hydra_context = HydraContext(config_loader=loader, callbacks=None)
        return SimpleNamespace(hydra_context=launcher.hydra_context, launcher=launcher)

    local = sweeper_with(BasicLauncher())
    composed_once.keep_validated_configs(local)
    assert isinstance(local.hydra_context.config_loader, composed_once.KeptConfigs)
    assert local.launcher.hydra_context is local.hydra_context
    remote = sweeper_with(SimpleNamespace())  # a SLURM launcher pickles its loader into every job
    composed_once.keep_validated_configs(remote)
    assert remote.hydra_context.config_loader is loader


@pytest.mark.parametrize(
    ("argv", "environment", "forks"),
    [
        (["-m", "precision=fp16,nf4"], {}, True),
        (["--multirun", "bench.isolation=process"], {}, True),
        (["precision=fp16"], {}, False),  # a single run: its job is not forked from a worker
        (["-m", "precision=fp16,nf4", "--cfg", "job"], {}, False),
        (["-m", "precision=fp16,nf4", "hydra/launcher=submitit_slurm"], {}, False),
        (["-m", "precision=fp16,nf4", "bench.isolation=spawn"], {}, False),
        (["-m", "precision=fp16,nf4"], {early_worker.ISOLATION_ENV: "none"}, False),
    ],
)
def test_the_worker_starts_from_the_command_line_only_for_a_sweep_forking_here(monkeypatch, argv, environment, forks):
    monkeypatch.delenv(early_worker.ISOLATION_ENV, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert early_worker._forks_here(argv) is forks


class UnusedWorker:
    jobs_started = 0
    closed = False

    def close(self):
        self.closed = True


def test_a_worker_started_for_jobs_that_run_elsewhere_is_stopped(monkeypatch):
    worker = UnusedWorker()
    monkeypatch.setattr(warm_worker, "_worker", worker)
    cluster = OmegaConf.create(
        {
            "hydra": {"launcher": {"_target_": "hydra_plugins.hydra_submitit_launcher.x"}},
            "bench": {"isolation": "process"},
        }
    )
    early_worker.settle(cluster)
    assert worker.closed and warm_worker._worker is None


def test_a_local_sweep_with_isolation_keeps_its_worker(monkeypatch):
    worker = UnusedWorker()
    monkeypatch.setattr(warm_worker, "_worker", worker)
    local = OmegaConf.create(
        {"hydra": {"launcher": {"_target_": early_worker.BASIC_LAUNCHER}}, "bench": {"isolation": "process"}}
    )
    early_worker.settle(local)  # start_early: there is one already
    assert not worker.closed and warm_worker._worker is worker


def test_a_job_on_another_import_path_discovers_its_plugins_again(monkeypatch, tmp_path, fresh_hardware_table):
    monkeypatch.setattr(discoveries, "_stamp", None)
    discoveries.discover()
    assert registry._cache and hardware_facts.hardware_options.cache_info().currsize == 1
    discoveries.forget_if_stale()  # the same path, unchanged: kept
    assert registry._cache and hardware_facts.hardware_options.cache_info().currsize == 1
    monkeypatch.syspath_prepend(str(tmp_path))  # a plugin directory the worker did not see
    discoveries.forget_if_stale()
    assert registry._cache == {} and hardware_facts.hardware_options.cache_info().currsize == 0


def test_the_worker_does_not_fork_once_a_thread_pool_started(monkeypatch):
    # What importing polars starts (jemalloc's background threads, a spill cleaner) is fork-safe.
    monkeypatch.setattr(fork_server, "_thread_names", lambda: ["python", "jemalloc_bg_thd", "polars-ooc-clea"])
    assert fork_server.started_thread_pools() is None
    monkeypatch.setattr(fork_server, "_thread_names", lambda: ["python", "polars-0", "polars-1"])
    assert "polars-0, polars-1" in fork_server.started_thread_pools()
