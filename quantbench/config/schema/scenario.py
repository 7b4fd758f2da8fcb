"""The `scenario` group's schema (conf/scenario/): how the model is driven."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class ScenarioConfig:
    """How the model is driven: `offline` (timed generate() on a static batch) or `serve` (load
    levels against an OpenAI-compatible server, quantbench/scenarios/serve.py)."""

    name: str = MISSING
