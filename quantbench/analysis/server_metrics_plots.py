"""The serving jobs' server-side telemetry: what each server said of itself over time (running and
waiting requests, KV-cache usage), read from the jobs' server_metrics.parquet, its levels marked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from quantbench.analysis.plots import Skip, plt, save
from quantbench.analysis.serving import LOAD_UNITS
from quantbench.jobdir import SERVER_METRICS_FILE
from quantbench.loadgen.server_metric_levels import Series, quantity_series
from quantbench.loadgen.server_metrics import END, LEVEL_START, MEASURED_START

if TYPE_CHECKING:
    from quantbench.analysis.serving import ServingAnalysis

MAX_JOBS = 6  # one panel each


def _jobs(serving: ServingAnalysis) -> list[tuple[str, Series, dict[int, str]]]:
    """(label, the job's series, its level labels by index) for each job with a mapped series."""
    rows = serving.rows
    keys = [*serving.varying(), "precision"]
    found = []
    for (job_dir,), part in rows.partition_by("job_dir", as_dict=True, maintain_order=True).items():
        path = serving.sweep.job_path(job_dir) if serving.sweep is not None else None
        file = path / SERVER_METRICS_FILE if path is not None else None
        if file is None or not file.is_file():
            continue
        series = quantity_series(pl.read_parquet(file))
        if series.metric_map is None:
            continue
        first = part.row(0, named=True)
        label = " ".join(str(first[key]) for key in keys) + f" ({series.metric_map.engine})"
        loads = {
            int(row["level"]): f"{row['load']:g} {LOAD_UNITS[row['load_axis']]}"
            for row in part.iter_rows(named=True)
            if row.get("level") is not None
        }
        found.append((label, series, loads))
    return found


def _mark_levels(ax, scrapes: pl.DataFrame, loads: dict[int, str]) -> None:
    """Each level's start (a line, its load) and its measured phase (shaded)."""
    starts = scrapes.filter(pl.col("trigger") == LEVEL_START)
    measured = scrapes.filter(pl.col("trigger") == MEASURED_START)
    bounds = scrapes.filter(pl.col("trigger").is_in([LEVEL_START, END])).get_column("t_s").to_list()
    for row in starts.iter_rows(named=True):
        ax.axvline(row["t_s"], color="grey", linewidth=0.8)
        ax.annotate(
            loads.get(row["level"], f"level {row['level']}"),
            (row["t_s"], 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, 2),
            textcoords="offset points",
            fontsize=7,
            va="bottom",
        )
    for row in measured.iter_rows(named=True):
        later = [t for t in bounds if t > row["t_s"]]
        ax.axvspan(row["t_s"], later[0] if later else scrapes.get_column("t_s").max(), color="grey", alpha=0.12)


def draw_server_metrics(serving: ServingAnalysis, path: Path) -> str:
    jobs = _jobs(serving)
    if not jobs:
        raise Skip(
            f"no serving job has a {SERVER_METRICS_FILE} a known server filled (vLLM's or llama-server's /metrics)"
        )
    shown = jobs[:MAX_JOBS]
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.8 * len(shown)), squeeze=False)
    no_kv = []
    for ax, (label, series, loads) in zip(axes[:, 0], shown):
        scrapes = series.frame.filter(pl.col("error").is_null())
        times = scrapes.get_column("t_s").to_list()
        for name, style, text in (("requests_running", "-", "running"), ("requests_waiting", "--", "waiting")):
            ax.plot(times, scrapes.get_column(name).to_list(), linestyle=style, marker=".", markersize=3, label=text)
        ax.set_ylabel("requests")
        ax.set_title(label, fontsize=9, loc="left", pad=12)
        ax.grid(alpha=0.3)
        handles = ax.get_lines()
        kv = scrapes.get_column("kv_cache_usage")
        if kv.null_count() < kv.len():
            right = ax.twinx()
            handles += right.plot(times, (kv * 100).to_list(), color="tab:red", linestyle=":", label="KV cache used")
            right.set_ylabel("KV cache used (%)")
            right.set_ylim(0, 105)
        else:
            no_kv.append(label)
        _mark_levels(ax, series.frame, loads)
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0))
    axes[-1, 0].set_xlabel("seconds after the first scrape (shaded: each level's measured requests)")
    save(fig, path)
    note = "each server's own /metrics, scraped every serve.metrics_interval_s; a line marks each level's start"
    if no_kv:
        note += "; no KV-cache usage reported by: " + ", ".join(no_kv)
    if len(jobs) > MAX_JOBS:
        note += f"; the first {MAX_JOBS} of {len(jobs)} jobs"
    return note
