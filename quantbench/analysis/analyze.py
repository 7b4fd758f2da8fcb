"""One sweep, analysed: the ok rows with hardware, cost, roofline and quality columns added, and
the comparisons against the baseline. The report, the plots and `recommend` all start here."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from quantbench.analysis.comparisons import accuracy_comparisons, throughput_comparisons
from quantbench.analysis.cost import with_cost_columns
from quantbench.analysis.hardware import with_hardware_numbers
from quantbench.analysis.quality import QualityMetric, quality_metrics
from quantbench.analysis.roofline import with_roofline_columns
from quantbench.analysis.stats import StatsSettings
from quantbench.analysis.sweep import Sweep, load_sweep, precision_order

DEFAULT_CACHE_DIR = "~/.cache/quantbench"


@dataclass
class Analysis:
    sweep: Sweep
    settings: StatsSettings
    table: pl.DataFrame  # one row per ok job, with every derived column
    throughput: pl.DataFrame  # throughput_comparisons()
    accuracy: pl.DataFrame  # accuracy_comparisons()
    quality: list[QualityMetric]
    precisions: list[str]  # display order, baseline first
    notes: list[str] = field(default_factory=list)

    @property
    def batches(self) -> list[int]:
        return sorted(self.table.get_column("batch").unique().to_list()) if self.table.height else []

    def varying_group_columns(self) -> list[str]:
        """Group columns with more than one value: they must appear next to the precision."""
        return [
            column
            for column in self.sweep.group_columns()
            if column in self.table.columns and self.table.get_column(column).n_unique() > 1
        ]


def default_cache_dir(sweep: Sweep) -> Path:
    """The cache the sweep's jobs used (from their config), else $QUANTBENCH_CACHE, else the default."""
    result = sweep.first_result() or {}
    configured = (result.get("config") or {}).get("cache_dir")
    return Path(configured or os.environ.get("QUANTBENCH_CACHE") or DEFAULT_CACHE_DIR).expanduser()


def analyze(
    sweep_dir: str | Path,
    settings: StatsSettings | None = None,
    cache_dir: Path | None = None,
    comparisons: bool = True,
) -> Analysis:
    """`comparisons=False` skips the bootstrap and the paired tests (recommend does not need them)."""
    sweep = load_sweep(sweep_dir)
    settings = settings or StatsSettings()
    notes: list[str] = []
    ok = sweep.ok
    if ok.height == 0:
        notes.append("no job finished with status ok: there is nothing to compare")
    precisions = precision_order(ok, settings.baseline) if ok.height else []
    if ok.height and settings.baseline not in precisions:
        fallback = precisions[0]
        notes.append(
            f"baseline precision '{settings.baseline}' has no ok result in this sweep; "
            f"comparing against '{fallback}' (the largest weights) instead (choose with --baseline)"
        )
        settings = StatsSettings(**{**settings.__dict__, "baseline": fallback})
    cache_dir = cache_dir or default_cache_dir(sweep)
    table = with_hardware_numbers(sweep, cache_dir)
    if table.height:
        table = with_cost_columns(table, settings.baseline, sweep.group_columns())
        results = [sweep.result(job_dir) for job_dir in table.get_column("job_dir").to_list()]
        table = with_roofline_columns(table, results)
    return Analysis(
        sweep=sweep,
        settings=settings,
        table=table,
        throughput=throughput_comparisons(sweep, settings) if ok.height and comparisons else pl.DataFrame(),
        accuracy=accuracy_comparisons(sweep, settings) if ok.height and comparisons else pl.DataFrame(),
        quality=quality_metrics(table),
        precisions=precisions,
        notes=notes,
    )
