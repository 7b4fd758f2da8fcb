"""One sweep (or several read as one), analysed: the ok rows with hardware, cost, roofline and quality
columns added, the comparisons against the baseline precision and, where the jobs ran on several
machines, against the baseline hardware. The report, the plots and `recommend` all start here.

It reads the sweep directories alone: every hardware fact and the KV-cache size come from what the
jobs recorded, so the analysis gives the same answer on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from quantbench.analysis.comparisons import (
    accuracy_comparisons,
    hardware_comparisons,
    interval_note,
    throughput_comparisons,
)
from quantbench.analysis.cost import with_cost_columns
from quantbench.analysis.gate import QualityGate, choose_gate, with_quality_gate
from quantbench.analysis.hardware_axis import HARDWARE_AXIS, choose_baseline_hardware, with_hardware_columns
from quantbench.analysis.quality import QualityMetric, quality_metrics
from quantbench.analysis.roofline import with_roofline_columns
from quantbench.analysis.serving import ServingAnalysis, analyze_serving, is_serving
from quantbench.analysis.sweep import Sweep, first_directory_rows, load_sweeps, precision_order
from quantbench.config.schema import AnalysisConfig


@dataclass
class Analysis:
    sweep: Sweep
    settings: AnalysisConfig  # baseline and baseline_hardware as used (after any fallback)
    table: pl.DataFrame  # one row per ok offline job, with every derived column
    throughput: pl.DataFrame  # throughput_comparisons()
    accuracy: pl.DataFrame  # accuracy_comparisons()
    quality: list[QualityMetric]
    precisions: list[str]  # display order, baseline first
    notes: list[str] = field(default_factory=list)
    hardware: pl.DataFrame = field(default_factory=pl.DataFrame)  # hardware_comparisons(); empty on one machine
    serving: ServingAnalysis | None = None  # the scenario=serve rows (load levels); None without any
    gate: QualityGate | None = None  # what passes_quality_gate in `table` judged

    @property
    def interval_note(self) -> str | None:
        """Which kind of interval the statistics tables show: over repeats, or within one job."""
        return interval_note(self.throughput, self.settings.confidence)

    @property
    def batches(self) -> list[int]:
        return sorted(self.table.get_column("batch").unique().to_list()) if self.table.height else []

    @property
    def machines(self) -> list[str]:
        """The hardware axis, baseline hardware first."""
        if self.table.height == 0:
            return []
        machines = self.table.get_column(HARDWARE_AXIS).unique(maintain_order=True).to_list()
        return sorted(machines, key=lambda machine: machine != self.settings.baseline_hardware)

    def varying_group_columns(self) -> list[str]:
        """Group columns with more than one value: they must appear next to the precision."""
        return [
            column
            for column in self.sweep.group_columns()
            if column in self.table.columns and self.table.get_column(column).n_unique() > 1
        ]


def analyze(
    sweep_dirs: str | Path | list[str | Path],
    settings: AnalysisConfig | None = None,
    comparisons: bool = True,
) -> Analysis:
    """`comparisons=False` skips the bootstrap and the paired tests (recommend does not need them)."""
    sweep = load_sweeps(sweep_dirs)
    settings = settings or AnalysisConfig()
    notes: list[str] = []
    ok = sweep.ok
    # --baseline fp32 in a sweep across engines: its rows are named "fp32 · transformers".
    settings = replace(settings, baseline=sweep.labelled_precision(settings.baseline))
    if ok.height == 0:
        notes.append("no job finished with status ok: there is nothing to compare")
    precisions = precision_order(ok, settings.baseline) if ok.height else []
    if ok.height and settings.baseline not in precisions:
        fallback = precisions[0]
        notes.append(
            f"baseline precision '{settings.baseline}' has no ok result in this sweep; "
            f"comparing against '{fallback}' (the largest weights) instead (choose with --baseline)"
        )
        settings = replace(settings, baseline=fallback)
    serve_rows = with_hardware_columns(ok.filter(is_serving(ok)))
    table = with_hardware_columns(sweep.offline_ok)
    baseline_hardware, hardware_notes = choose_baseline_hardware(
        table, first_directory_rows(sweep, table), settings.baseline_hardware
    )
    notes += hardware_notes
    settings = replace(settings, baseline_hardware=baseline_hardware)
    if table.height:
        table = with_cost_columns(table, settings.baseline, sweep.group_columns())
        table = with_roofline_columns(table)
    gate = choose_gate(table, settings.quality_gate, settings.quality_gate_metric)
    # Quality does not depend on the generation length either (as in recommend's quality drop).
    quality_groups = [column for column in sweep.group_columns() if column != "max_new_tokens"]
    table = with_quality_gate(table, gate, settings.baseline, quality_groups)
    serving = analyze_serving(sweep, serve_rows, table, settings, precisions)
    several_machines = table.height > 0 and table.get_column(HARDWARE_AXIS).n_unique() > 1
    return Analysis(
        sweep=sweep,
        settings=settings,
        table=table,
        throughput=throughput_comparisons(sweep, settings) if table.height and comparisons else pl.DataFrame(),
        accuracy=accuracy_comparisons(sweep, settings) if table.height and comparisons else pl.DataFrame(),
        quality=quality_metrics(table),
        precisions=precisions,
        notes=notes,
        hardware=hardware_comparisons(sweep, table, baseline_hardware, settings)
        if several_machines and comparisons
        else pl.DataFrame(),
        serving=serving,
        gate=gate,
    )
