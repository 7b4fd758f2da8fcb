"""Shared fixtures: a session-wide model cache, composing real configs, running the real app."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from quantbench import registry
from quantbench.schema import register_configs

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The tests read the data beside the checkout, as .ci/run does; a user's default is elsewhere
# (~/.cache/quantbench/data), so the tests say where explicitly.
os.environ.setdefault("QUANTBENCH_DATA", str(SHARED_DATA))


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole run, so models are materialised once.

    QUANTBENCH_TEST_CACHE reuses a cache across runs while developing; CI starts empty.
    """
    path = Path(os.environ.get("QUANTBENCH_TEST_CACHE") or tmp_path_factory.mktemp("quantbench-cache"))
    os.environ["QUANTBENCH_CACHE"] = str(path)
    # A child process per job costs ~10 s on 2 cores (interpreter, torch and transformers again);
    # the suite runs ~40 jobs in-process. Tests of isolation itself ask for it explicitly.
    os.environ.setdefault("QUANTBENCH_ISOLATION", "none")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")  # gptqmodel's loader refuses fewer than 2
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def _prune_added(node: dict, before: dict) -> None:
    """Remove the entries a test added to a ConfigStore (sub)tree, keeping what was there before."""
    for key in list(node):
        if key == "hydra":
            continue  # Hydra's own configs register once, on import; they are never a test's
        if key not in before:
            del node[key]
        elif isinstance(node[key], dict) and isinstance(before[key], dict):
            _prune_added(node[key], before[key])


def _shape(node: dict) -> dict:
    return {key: _shape(value) if isinstance(value, dict) else None for key, value in node.items()}


@pytest.fixture(autouse=True)
def clean_hydra_and_registries():
    """Each test starts with no Hydra instance, freshly discovered plugins, and the ConfigStore
    without the schemas an earlier test's plugin stored (a later sweep would pickle them)."""
    GlobalHydra.instance().clear()
    registry.clear_cache()
    store = ConfigStore.instance().repo
    before = _shape(store)
    yield
    GlobalHydra.instance().clear()
    registry.clear_cache()
    _prune_added(store, before)


@pytest.fixture
def compose_config() -> Callable[[list[str]], DictConfig]:
    def _compose(overrides: list[str] | None = None) -> DictConfig:
        register_configs()
        GlobalHydra.instance().clear()
        with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)

    return _compose


def run_app(args: list[str], out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """Run `python -m quantbench ARGS` in this process; returns (run or sweep dir, exit code)."""
    from quantbench.__main__ import main

    multirun = "-m" in args or "--multirun" in args
    target = out_dir / ("multirun" if multirun else "run")
    argv = ["quantbench", *args, f"hydra.sweep.dir={target}", f"hydra.run.dir={target}"]
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        GlobalHydra.instance().clear()
    return target, code


def sweep_rows(args: list[str], out_dir: Path) -> dict[str, dict]:
    """Run an in-process sweep (`-m` is added) for a module-scoped fixture, which cannot use the
    test-scoped monkeypatch; its summary rows by precision."""
    import polars as pl

    monkeypatch = pytest.MonkeyPatch()
    try:
        target, code = run_app(["-m", *args], out_dir, monkeypatch)
    finally:
        monkeypatch.undo()
    assert code == 0, f"quantbench -m {' '.join(args)} exited with {code}"
    return {row["precision"]: row for row in pl.read_parquet(target / "summary.parquet").iter_rows(named=True)}


@pytest.fixture
def run_quantbench(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str], Path], Path]:
    """Run the app in-process and return its run or sweep directory; fail on a non-zero exit."""

    def _run(args: list[str], out_dir: Path) -> Path:
        target, code = run_app(args, out_dir, monkeypatch)
        assert code == 0, f"quantbench {' '.join(args)} exited with {code}"
        return target

    return _run
