"""Shared fixtures: a session-wide model cache, composing real configs, running the real app, starting
the stand-in server. Helpers that are not fixtures live in support/ (tests/README.md)."""

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
from support import SHARED_DATA, STANDIN
from support.app import run_app

from quantbench.config import registry
from quantbench.config.schema import register_configs

# The tests read the data beside the checkout, as .ci/run does; a user's default is elsewhere
# (~/.cache/quantbench/data), so the tests say where explicitly.
os.environ.setdefault("QUANTBENCH_DATA", str(SHARED_DATA))


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole run, so models are materialised once.

    QUANTBENCH_TEST_CACHE reuses a cache across runs while developing; CI starts empty.
    """
    path = Path(os.environ.get("QUANTBENCH_TEST_CACHE") or tmp_path_factory.mktemp("quantbench-cache"))
    _link_engine_installations(path)
    os.environ["QUANTBENCH_CACHE"] = str(path)
    # A child process per job costs ~10 s on 2 cores (interpreter, torch and transformers again);
    # the suite runs ~40 jobs in-process. Tests of isolation itself ask for it explicitly.
    os.environ.setdefault("QUANTBENCH_ISOLATION", "none")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")  # gptqmodel's loader refuses fewer than 2
    return path


def _link_engine_installations(test_cache: Path) -> None:
    """The engines made by `quantbench engines install` (vLLM's environment, llama.cpp's tools: minutes
    to make) live in the user's cache, which the tests replace with their own: each one installed
    there is linked into the test cache at the same place, so the tests that need it find it."""
    from quantbench.cli.cache import default_cache_dir
    from quantbench.cli.engines import INSTALLS, installation

    user_cache = default_cache_dir()  # QUANTBENCH_CACHE as the user set it, before the tests replace it
    if user_cache.resolve() == test_cache.resolve():
        return
    for name in INSTALLS:
        entry = installation(name).installed(user_cache)
        if entry is None:
            continue
        link = test_cache / entry.relative_to(user_cache)
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(entry, target_is_directory=True)


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


@pytest.fixture
def run_quantbench(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str], Path], Path]:
    """Run the app in-process and return its run or sweep directory; fail on a non-zero exit."""

    def _run(args: list[str], out_dir: Path) -> Path:
        target, code = run_app(args, out_dir, monkeypatch)
        assert code == 0, f"quantbench {' '.join(args)} exited with {code}"
        return target

    return _run


@pytest.fixture
def standin(tmp_path):
    """Start the stand-in server (support/serve_standin.py) with the given options; yields a
    function returning its Endpoint. Every server it started is stopped afterwards."""
    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.server import ServerProcess, free_port

    servers: list[ServerProcess] = []

    def start(*options: str) -> Endpoint:
        port = free_port()
        server = ServerProcess(
            [sys.executable, str(STANDIN), "serve", "m", "--port", str(port), *options],
            tmp_path / f"standin-{port}.log",
        ).__enter__()
        servers.append(server)
        server.wait_healthy(f"http://127.0.0.1:{port}/health", 60.0)
        return Endpoint(base_url=f"http://127.0.0.1:{port}", model="m")

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fresh_hardware_table():
    """The hardware options table read afresh, before and after the test (it is cached per process)."""
    from quantbench.measure import hardware_facts

    hardware_facts.hardware_options.cache_clear()
    yield
    hardware_facts.hardware_options.cache_clear()
