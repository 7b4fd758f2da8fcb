"""Scenarios: how a job drives the model. `offline` times generate() on a static batch in
quantbench's own process (the engine's `measure_offline`, else quantbench.job.measure_job, the
transformers path); `serve` loads a server with requests (quantbench.scenarios.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.device import Device
    from quantbench.progress import JobProgress

SCENARIOS = ("offline", "serve")
Measure = Callable[["DictConfig", "Device", Path, "JobProgress"], tuple[dict[str, Any], list[str]]]


def scenario_name(cfg: "DictConfig") -> str:
    scenario = cfg.get("scenario")
    return "offline" if scenario is None else str(scenario.name)


def measure_scenario(cfg: "DictConfig", device: "Device", job_dir: Path, progress: "JobProgress", offline: Measure) -> tuple[dict[str, Any], list[str]]:
    """The job's metrics and sample outputs, measured the way `scenario` says, by the job's engine."""
    name = scenario_name(cfg)
    if name == "serve":
        from quantbench.scenarios.serve import measure_serve

        return measure_serve(cfg, device, job_dir, progress)
    if name != "offline":
        raise JobSkipped(f"unknown scenario '{name}'; choose one of: {', '.join(SCENARIOS)}")
    if cfg.get("engine") is None:  # a config from before engines existed: the transformers path
        return offline(cfg, device, job_dir, progress)
    from quantbench.engines.base import check_precision_engine, resolve_engine

    engine_name, engine = resolve_engine(cfg)
    if not engine.offline:
        raise JobSkipped(f"engine {engine_name} only serves; use scenario=serve, or engine=auto for the offline measurement")
    check_precision_engine(cfg, engine_name)
    # An engine with its own offline measurement (llama.cpp) runs it; transformers runs `offline`.
    measure = getattr(engine, "measure_offline", None) or offline
    metrics, outputs = measure(cfg, device, job_dir, progress)
    # Every offline row names its engine: a sweep across engines labels its rows "precision · engine".
    return {"engine": engine_name, **metrics}, outputs
