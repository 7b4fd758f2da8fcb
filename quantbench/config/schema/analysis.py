"""The `analysis` node: the statistics, cost and report settings of a sweep, which are also the
settings the analysis code takes."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf


@dataclass
class AnalysisConfig:
    """Statistics, cost and the report of a sweep (quantbench/analysis, quantbench report).

    The same dataclass is the `analysis` config node and the settings the analysis code takes;
    `quantbench report` and `recommend` build it from the node a sweep ran with (`from_values`).
    """

    baseline: str = "fp32"  # the precision every other one is compared with
    # Several sweeps in one report: the hardware every other is compared with (a hardware name, a
    # device name, or both as the report writes them); null: the first sweep directory's.
    baseline_hardware: Optional[str] = None
    confidence: float = 0.95  # of every interval
    bootstrap_resamples: int = 2000
    alpha: float = 0.05  # a ratio is called faster/slower only where p < alpha
    seed: int = 0  # of the bootstrap
    # Fewer timed iterations than this and an interval is flagged as rough (bench.min_iterations
    # decides how many are taken).
    warn_below_iterations: int = 10
    report_at_end: bool = True  # write report.md/report.html after the sweep is collected
    # Serving: the concurrency (or request rate) of the study table; null: the highest load every
    # precision measured.
    serve_load: Optional[float] = None
    # Serving: the p95 end-to-end bound (ms) of "highest load under the SLO" for jobs that ran
    # without serve.slo; null: those jobs have no SLO to judge.
    serve_max_e2e_p95_ms: Optional[float] = None
    # Quality gate (quantbench/analysis/gate.py): a configuration passes when it keeps at least this
    # fraction of the baseline's quality. 0.99: MLPerf's accuracy target (99.9 % its strict one);
    # 0.95: llm-compressor's recovery threshold.
    quality_gate: float = 0.99
    # What the gate measures: auto (PubMedQA accuracy where measured, else perplexity inverted,
    # PPL_baseline / PPL), pubmedqa or ppl.
    quality_gate_metric: str = "auto"

    @classmethod
    def from_values(cls, values: Any = None, **overrides: Any) -> AnalysisConfig:
        """From an `analysis` config node or the dict a result.json holds, then `overrides` (None
        leaves a value as it is). Keys this version does not know (written by a newer quantbench)
        are left out; the types are the schema's, so a YAML `0.9` and a CLI `--confidence 0.9` agree."""
        if isinstance(values, DictConfig):
            values = OmegaConf.to_container(values, resolve=True)
        known = {item.name for item in fields(cls)}
        chosen = {key: value for key, value in dict(values or {}).items() if key in known}
        chosen |= {key: value for key, value in overrides.items() if value is not None}
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), chosen))
