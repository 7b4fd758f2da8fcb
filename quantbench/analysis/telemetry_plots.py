"""The telemetry figure: each job's power and SM clock over its timed phase (GPU), or its CPU
use and resident memory (CPU), read from the jobs' telemetry.parquet files."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

from quantbench.analysis.sweep import Sweep
from quantbench.jobdir import TELEMETRY_FILE
from quantbench.measure.telemetry import UNMEASURED_PHASES

MAX_JOBS = 12  # more lines than this in one panel cannot be told apart


class NoTelemetry(Exception):
    """No job of the sweep left telemetry to plot; the message says why."""


def _measured(path: Path) -> pl.DataFrame | None:
    """A job's samples outside warm-up and server start-up, time from the first of them."""
    file = path / TELEMETRY_FILE
    if not file.is_file():
        return None
    frame = pl.read_parquet(file)
    if "phase" in frame.columns:
        frame = frame.filter(~pl.col("phase").is_in(list(UNMEASURED_PHASES)))
    if frame.height < 2:
        return None
    return frame.with_columns(pl.col("t_s") - pl.col("t_s").min())


def _cpu_cores_busy(frame: pl.DataFrame) -> pl.DataFrame:
    """CPU seconds per wall second between samples: how many cores the process kept busy."""
    return frame.with_columns((pl.col("cpu_time_s").diff() / pl.col("t_s").diff()).alias("cores_busy")).drop_nulls(
        "cores_busy"
    )


def draw_telemetry(sweep: Sweep, rows: pl.DataFrame, labels: list[str], path: Path) -> str:
    """One line per job (the first MAX_JOBS of `rows`, named by `labels`); the note says what is shown."""
    series = []
    for row, label in zip(rows.iter_rows(named=True), labels):
        job_path = sweep.job_path(row.get("job_dir"))
        frame = _measured(job_path) if job_path else None
        if frame is not None:
            series.append((label + (" (throttled)" if row.get("clocks_throttled") else ""), frame))
    if not series:
        raise NoTelemetry(f"no job has a {TELEMETRY_FILE} with samples of its timed phase")
    gpu = all(
        "power_w" in frame.columns and frame.get_column("power_w").null_count() < frame.height for _, frame in series
    )
    panels = (
        (("power_w", "board power (W)"), ("sm_clock_mhz", "SM clock (MHz)"))
        if gpu
        else (("cores_busy", "CPU cores busy"), ("rss_gb", "resident memory (GB)"))
    )
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for label, frame in series[:MAX_JOBS]:
        frame = frame if gpu else _cpu_cores_busy(frame)
        for ax, (column, _) in zip(axes, panels):
            ax.plot(frame.get_column("t_s").to_list(), frame.get_column(column).to_list(), label=label, linewidth=1)
    for ax, (_, ylabel) in zip(axes, panels):
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds into the timed phase")
    axes[0].legend(fontsize=7, ncol=2)
    axes[0].set_title(
        "Power and SM clock over the timed phase"
        if gpu
        else "CPU use and memory over the timed phase (no GPU telemetry)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    left = f"; the first {MAX_JOBS} of {len(series)} jobs" if len(series) > MAX_JOBS else ""
    return (
        "GPU board power and SM clock, sampled ~10/s; '(throttled)': a power or thermal limit held the clocks down"
        if gpu
        else "CPU seconds per second of the job's process and its resident memory, sampled ~10/s"
    ) + left
