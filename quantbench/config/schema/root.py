"""The root config (conf/config.yaml's `base_config`): one key per group and the settings of no
group. The groups chosen by option are typed `Any`, so that each option can extend the schema that
fits it, including schemas that plugins store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from quantbench.config.schema.analysis import AnalysisConfig
from quantbench.config.schema.quality import QualityConfig
from quantbench.config.schema.serve import ServeConfig


@dataclass
class QuantbenchConfig:
    model: Any = MISSING
    precision: Any = MISSING
    hardware: Any = MISSING
    dataset: Any = MISSING
    bench: Any = MISSING
    batch: int = 1
    quality: QualityConfig = field(default_factory=QualityConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    scenario: Any = MISSING
    engine: Any = MISSING
    serve: ServeConfig = field(default_factory=ServeConfig)
    # Materialised models and quantized checkpoints; shared by every job and every sweep.
    cache_dir: str = "${oc.env:QUANTBENCH_CACHE,'~/.cache/quantbench'}"
    # Re-running a sweep into its own directory (hydra.sweep.dir=...) reuses every ok result of
    # the same config and runs the rest; false re-runs everything.
    resume: bool = True
