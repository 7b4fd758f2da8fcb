"""The report's energy and telemetry sections: joules per token where a counter was read (and why
not where none was), and which jobs ran with their clocks held down or on a shared GPU."""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_fixed, fmt_number
from quantbench.analysis.sweep import column_or_none
from quantbench.report.document import Bullets, Paragraph, Table

# (column, header, formatter), as quantbench.report.config_tables' per-configuration tables.
ENERGY_TABLE_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("energy_per_token_j", "J per token", lambda v: fmt_fixed(v, 4)),
    ("tokens_per_kwh", "tokens per kWh", fmt_number),
    ("avg_power_w", "mean power W", lambda v: fmt_fixed(v, 1)),
    ("energy_j", "J (timed phase)", fmt_number),
    ("energy_source", "counter", str),
)

ENERGY_METHOD = (
    "Energy: the hardware counter (NVML total energy on a GPU, RAPL package + DRAM on a CPU) read right before "
    "and after each timed iteration; J per token = joules of the timed iterations / generated tokens, mean power "
    "= joules / timed seconds. The counters cover the whole GPU board or CPU socket, every process on it. "
    "Nothing is estimated where no counter exists: the columns stay empty with the reason."
)


def _unavailable(frame: pl.DataFrame) -> list[str]:
    reasons = column_or_none(frame, "energy_unavailable_reason")
    return [] if reasons is None else sorted({reason for reason in reasons.to_list() if reason})


def energy_blocks(analysis: Analysis, table: Table | None, statistics: Table | None) -> list:
    """The Energy section; `table` and `statistics` are the per-configuration table of
    ENERGY_TABLE_COLUMNS and its tokens-per-kWh ratios against the baseline (report/offline.py)."""
    frame = analysis.table
    reasons = _unavailable(frame)
    if column_or_none(frame, "energy_j") is None:
        why = "; ".join(reasons) or "the jobs recorded no energy (made by a quantbench without energy readings)"
        return [Paragraph(f"Not measured: {why}. Energy is never estimated from a TDP.")]
    blocks: list = [table] if table is not None else []
    if statistics is not None:
        blocks += [
            Paragraph(
                f"Tokens per kWh vs {analysis.settings.baseline} (per-iteration energy, same statistics as throughput):"
            ),
            statistics,
        ]
    if reasons:
        blocks.append(Paragraph("Jobs without a counter: " + "; ".join(reasons)))
    return blocks


def _job_label(row: dict[str, Any]) -> str:
    return f"{row.get('model')} {row.get('precision')} batch {row.get('batch')}"


def telemetry_blocks(analysis: Analysis) -> list:
    """Jobs whose clocks a power or thermal limit held down, and jobs that shared their GPU."""
    frame = analysis.sweep.ok
    flags: list[str] = []
    throttled = (
        frame.filter(pl.col("clocks_throttled").fill_null(False))
        if "clocks_throttled" in frame.columns
        else frame.clear()
    )
    for row in throttled.iter_rows(named=True):
        share = row.get("throttled_sample_fraction")
        part = f" in {share:.0%} of the samples" if share is not None else ""
        flags.append(
            f"**clocks throttled**: {_job_label(row)} ({row.get('throttle_reasons')}{part}; SM clock "
            f"{row.get('sm_clock_min_mhz')}–{row.get('sm_clock_max_mhz')} MHz): "
            "its speed is the limit's, not the precision's"
        )
    shared = (
        frame.filter(pl.col("other_gpu_process_count").fill_null(0) > 0)
        if "other_gpu_process_count" in frame.columns
        else frame.clear()
    )
    for row in shared.iter_rows(named=True):
        flags.append(
            f"**shared GPU**: {_job_label(row)} ran beside {row['other_gpu_process_count']} other process(es) "
            "(result.json other_gpu_processes)"
        )
    judged = column_or_none(frame, "clocks_throttled")
    if judged is None:
        flags.append("No GPU clock readings (CPU jobs, or no NVML): the telemetry figure shows CPU time and memory.")
    elif not throttled.height:
        flags.append(
            "No job's clocks were held down by a power or thermal limit "
            f"({judged.len() - judged.null_count()} jobs with GPU readings)."
        )
    return [Bullets(tuple(flags))]
