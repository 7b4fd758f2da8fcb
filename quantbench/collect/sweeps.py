"""Aggregate sweep directories into one polars frame: `summary.parquet`, `summary.csv`, a table.

Reads every job's `result.json` from disk (Hydra's end-of-sweep callback is given no job
results), so it works the same on a finished sweep, a partial one, or one with failed jobs.
A job directory that Hydra created but that has no result.json is a `failed` row saying so, and
one whose result.json this quantbench cannot read is a `failed` row with the reason.

A sweep with `bench.repeats=N` runs each configuration N times: `jobs.parquet` keeps one row per
job (each with its `repeat` index), `summary.parquet` one row per configuration with `n_repeats`
and the interval over repeats (quantbench.collect.repeats). With one repeat the two hold the same rows.

A sweep collected again reads only the result.json files that changed since (quantbench.collect.incremental).

Several sweeps (e.g. one per machine) merge into one summary (`quantbench collect A B --output D`):
each row then names its sweep (`sweep_dir`) and its job directory by absolute path.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from quantbench.atomic import write_parquet_atomic
from quantbench.collect.incremental import rows_of_jobs
from quantbench.collect.repeats import configuration_rows
from quantbench.errors import UnreadableResult
from quantbench.jobdir import RESULT_FILE, JobResult, config_hash, read_result
from quantbench.loadgen.rows import scenario_rows
from quantbench.runtime.slurm_job import slurm_columns

HYDRA_DIR = ".hydra"  # Hydra's record of a job: config.yaml, overrides.yaml, hydra.yaml
SUMMARY_PARQUET = "summary.parquet"
SUMMARY_CSV = "summary.csv"
JOBS_PARQUET = "jobs.parquet"  # one row per job; the summary has one per configuration

IDENTITY_COLUMNS = [
    "model",
    "precision",
    "backend",
    "family",
    "batch",
    "hardware",
    "device",
    "dataset",
    "scenario",
    "engine",
    "status",
    "reason",
]
METRIC_COLUMNS = [
    "qps",
    "tokens_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "ttft_p50_ms",
    "tpot_p50_ms",
    "peak_memory_gb",
    "weight_memory_gb",
    "bits_per_weight",
    "n_iterations",
]
TRAILING_COLUMNS = ["job_dir", "config_hash", "quantbench_version", "started_at", "finished_at"]
SWEEP_COLUMN = "sweep_dir"  # in a summary of several sweeps: the sweep directory of each row
# What the terminal table shows, when present; everything is in the parquet/csv files.
TABLE_COLUMNS = [
    ("model", "model"),
    ("precision", "precision"),
    ("batch", "batch"),
    ("status", "status"),
    ("tokens_per_s", "tok/s"),
    ("qps", "samples/s"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
    ("concurrency", "users"),  # serving rows: one per load level
    ("request_rate", "rate/s"),
    ("request_throughput_per_s", "req/s"),
    ("output_tokens_per_s", "out tok/s"),
    ("e2e_p50_ms", "E2E p50 ms"),
    ("e2e_p95_ms", "E2E p95 ms"),
    ("n_failed_requests", "failed req"),
    ("ttft_p50_ms", "TTFT ms"),
    ("tpot_p50_ms", "TPOT ms"),
    ("peak_memory_gb", "peak GB"),
    ("weight_memory_gb", "weights GB"),
    ("bits_per_weight", "bits/w"),
    ("ppl", "ppl"),
    ("kld_mean", "KLD"),
    ("top1_agree", "top-1 %"),
    ("ppl_ratio", "PPL ratio"),
    ("delta_p_rms", "RMS Δp"),
    ("pubmedqa_acc", "PubMedQA"),
    ("reason", "reason"),
]


def job_directories(sweep_dir: Path) -> list[Path]:
    """Directories holding a result.json or Hydra's record of a started job (.hydra/config.yaml).
    One walk of the tree (at 10,000 jobs two rglob passes cost seconds); nothing below a job's
    own `.hydra` directory is visited."""
    found = []
    for directory, subdirectories, files in os.walk(sweep_dir):
        here = Path(directory)
        if RESULT_FILE in files or (HYDRA_DIR in subdirectories and (here / HYDRA_DIR / "config.yaml").is_file()):
            found.append(here)
        if HYDRA_DIR in subdirectories:
            subdirectories.remove(HYDRA_DIR)
    return sorted(found, key=_job_sort_key)


def _job_sort_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in path.parts)


def _unfinished_row(job_dir: Path) -> dict[str, Any]:
    row: dict[str, Any] = {"status": "failed", "reason": "job did not finish: no result.json in its directory"}
    config_file = job_dir / ".hydra" / "config.yaml"
    if config_file.exists():
        from omegaconf import OmegaConf

        try:
            config = OmegaConf.load(config_file)
            row.update(
                repeat=OmegaConf.select(config, "bench.repeat", default=0),
                model=OmegaConf.select(config, "model.name"),
                precision=OmegaConf.select(config, "precision.name"),
                backend=OmegaConf.select(config, "precision.backend"),
                family=OmegaConf.select(config, "model.family"),
                batch=OmegaConf.select(config, "batch"),
                hardware=OmegaConf.select(config, "hardware.name"),
                dataset=OmegaConf.select(config, "dataset.name"),
            )
        except Exception:
            pass
    return row


def result_row(data: dict[str, Any]) -> dict[str, Any]:
    """One flat row: identity, status, every scalar metric, and which quantbench measured it."""
    row: dict[str, Any] = dict(data.get("identity", {}))
    row["status"] = data.get("status")
    row["reason"] = data.get("reason")
    for key, value in (data.get("metrics") or {}).items():
        if value is None or isinstance(value, (bool, int, float, str)):
            row[key] = value
    row["config_hash"] = data.get("config_hash")
    config = data.get("config") or {}
    row["repeat"] = (config.get("bench") or {}).get("repeat", 0)
    row["configuration_hash"] = configuration_hash(config) if config else None
    row["quantbench_version"] = ((data.get("environment") or {}).get("versions") or {}).get("quantbench")
    row.update(slurm_columns(data.get("environment")))  # slurm_job_id, slurm_node: jobs that ran under SLURM
    row["started_at"] = data.get("started_at")
    row["finished_at"] = data.get("finished_at")
    return row


def configuration_hash(config: dict[str, Any]) -> str:
    """The config hash less the repeat index: the same for every repeat of one configuration."""
    bench = {key: value for key, value in (config.get("bench") or {}).items() if key != "repeat"}
    return config_hash({**config, "bench": bench})


def job_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A result's summary rows: one per load level of a serving job, else one."""
    return scenario_rows(data, result_row(data))


def _read_rows(job_dir: Path) -> list[dict[str, Any]]:
    """A job's rows, without their job_dir."""
    if not (job_dir / RESULT_FILE).exists():
        return [_unfinished_row(job_dir)]
    try:
        return job_rows(_fields(read_result(job_dir)))
    except UnreadableResult as reason:
        return [{"status": "failed", "reason": str(reason)}]


def _fields(result: JobResult) -> dict[str, Any]:
    """A result's fields as result.json names them, without JobResult.to_json's deep copy (the
    collector only reads them: the copy was a third of the time per job at 10,000 jobs)."""
    data = {name: getattr(result, name) for name in JobResult.__dataclass_fields__}
    # NaN (Python's json reads it, quantbench never writes it) is a missing value, as to_json makes it.
    data["metrics"] = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in result.metrics.items()
    }
    return data


def _harmonise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row every column, and one type per column (ints become floats beside floats)."""
    kinds: dict[str, set[type]] = {column: set() for column in IDENTITY_COLUMNS + METRIC_COLUMNS}
    for row in rows:  # one pass over the cells: the columns in first-seen order, and their types
        for column, value in row.items():
            if value is not None:
                kinds.setdefault(column, set()).add(type(value))
            elif column not in kinds:
                kinds[column] = set()
    columns = [column for column in kinds if column not in TRAILING_COLUMNS] + TRAILING_COLUMNS
    for column in columns:
        found = kinds.get(column, set())
        if found <= {int, float} and float in found and int in found:
            convert = lambda value: float(value) if isinstance(value, int) else value  # noqa: E731
        elif len(found) > 1:  # mixed kinds (e.g. str and float): keep the text
            convert = lambda value: str(value) if value is not None else None  # noqa: E731
        else:
            continue
        for row in rows:
            if column in row:
                row[column] = convert(row[column])
    return [{column: row.get(column) for column in columns} for row in rows]


def frame_from_rows(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    rows = _harmonise(list(rows))
    if not rows:
        return pl.DataFrame({column: [] for column in IDENTITY_COLUMNS + METRIC_COLUMNS + TRAILING_COLUMNS})
    return pl.DataFrame(rows, infer_schema_length=None)


def _job_rows_of(sweep_dir: Path) -> list[dict[str, Any]]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    # Only the result.json files that changed since the sweep was last collected are read again.
    return rows_of_jobs(sweep_dir, job_directories(sweep_dir), _read_rows)


def collect_sweep(sweep_dir: Path) -> pl.DataFrame:
    """One row per configuration (per load level), its repeats folded in: `summary.parquet`."""
    return frame_from_rows(configuration_rows(_job_rows_of(sweep_dir)))


def locate_job_dir(sweep_dir: Path, job_dir: str | None) -> Path | None:
    """A job directory a summary names: absolute, relative to the sweep or to the working directory,
    or by its own name inside the sweep (the sweep directory was moved or copied since)."""
    if not job_dir:
        return None
    path = Path(job_dir)
    candidates = [path] if path.is_absolute() else [sweep_dir / path, Path.cwd() / path]
    candidates.append(sweep_dir / path.name)
    return next((candidate for candidate in candidates if candidate.is_dir()), None)


def _absolute_job_dir(sweep_dir: Path, job_dir: str | None) -> str | None:
    found = locate_job_dir(sweep_dir, job_dir)
    return str(found.resolve()) if found else job_dir


def merge_summaries(summaries: list[tuple[Path, pl.DataFrame]]) -> pl.DataFrame:
    """One summary of several sweeps' summaries. Each row names its sweep and its job directory by
    absolute path, so the merged summary can be read from anywhere; columns that only some sweeps
    have (a newer quantbench's metrics) are empty in the others' rows."""
    rows = []
    for sweep_dir, frame in summaries:
        for row in frame.iter_rows(named=True):
            row["job_dir"] = _absolute_job_dir(sweep_dir, row.get("job_dir"))
            if row.get("job_dirs"):  # the repeats' directories (quantbench.collect.repeats), absolute too
                row["job_dirs"] = json.dumps(
                    [_absolute_job_dir(sweep_dir, job_dir) for job_dir in json.loads(row["job_dirs"])]
                )
            row[SWEEP_COLUMN] = str(Path(sweep_dir).resolve())
            rows.append(row)
    return frame_from_rows(rows)


def collect_sweeps(sweep_dirs: list[Path]) -> pl.DataFrame:
    """The summary of one sweep, or the merged summary of several."""
    if len(sweep_dirs) == 1:
        return collect_sweep(sweep_dirs[0])
    return merge_summaries([(Path(sweep_dir), collect_sweep(sweep_dir)) for sweep_dir in sweep_dirs])


def write_summary(sweep_dir: Path, frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """Collect `sweep_dir` (or take `frame`, e.g. a merged summary) and write its summary files
    there; a sweep collected here gets its `jobs.parquet` too."""
    if frame is None:
        rows = _job_rows_of(sweep_dir)
        write_parquet_atomic(Path(sweep_dir) / JOBS_PARQUET, frame_from_rows(rows))
        frame = frame_from_rows(configuration_rows(rows))
    write_parquet_atomic(Path(sweep_dir) / SUMMARY_PARQUET, frame)
    write_parquet_atomic(Path(sweep_dir) / SUMMARY_CSV, frame)
    return frame


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def render_table(frame: pl.DataFrame, title: str):
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    shown = [
        (column, header)
        for column, header in TABLE_COLUMNS
        if column in frame.columns and frame[column].null_count() < frame.height
    ]
    for column, header in shown:
        justify = "right" if frame.schema[column].is_numeric() else "left"
        table.add_column(header, justify=justify, overflow="fold", max_width=60 if column == "reason" else None)
    for row in frame.iter_rows(named=True):
        style = {"ok": None, "skipped": "yellow", "failed": "red"}.get(row.get("status"))
        table.add_row(*(_format(row.get(column)) for column, _ in shown), style=style)
    return table


# The terminal table shows at most this many rows (drawing 400 took seconds, and nobody reads them
# there); every row is in summary.csv / summary.parquet.
MAX_TABLE_ROWS = 100


def print_table(frame: pl.DataFrame, title: str) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file or pipe: do not wrap the table at 80 columns
        console = Console(width=200)
    console.print(render_table(frame.head(MAX_TABLE_ROWS), title))
    if frame.height > MAX_TABLE_ROWS:
        console.print(f"... and {frame.height - MAX_TABLE_ROWS} more rows: all {frame.height} are in {SUMMARY_CSV}")
