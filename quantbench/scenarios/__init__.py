"""Scenarios: how a job drives the model. `offline` times generation of a static batch in
quantbench's own process, the same measurement for every engine (quantbench.scenarios.offline, the
engine's part through quantbench.engines.offline.OfflineRunner); `serve` loads a server with
requests (quantbench.scenarios.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.runtime.device import Device
    from quantbench.runtime.progress import JobProgress

SCENARIOS = ("offline", "serve")


def scenario_name(cfg: DictConfig) -> str:
    scenario = cfg.get("scenario")
    return "offline" if scenario is None else str(scenario.name)


def measure_scenario(
    cfg: DictConfig, device: Device, job_dir: Path, progress: JobProgress
) -> tuple[dict[str, Any], list[str]]:
    """The job's metrics and sample outputs, measured the way `scenario` says, by the job's engine."""
    name = scenario_name(cfg)
    if name == "serve":
        from quantbench.scenarios.serve import measure_serve

        return measure_serve(cfg, device, job_dir, progress)
    if name != "offline":
        raise JobSkipped(f"unknown scenario '{name}'; choose one of: {', '.join(SCENARIOS)}")
    from quantbench.scenarios.offline import measure_offline

    return measure_offline(cfg, device, job_dir, progress)
