"""Aggregate a sweep directory into one polars frame: `summary.parquet`, `summary.csv`, a table.

Reads every job's `result.json` from disk (Hydra's end-of-sweep callback is given no job
results), so it works the same on a finished sweep, a partial one, or one with failed jobs.
A job directory that Hydra created but that has no result.json is a `failed` row saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from quantbench.results import RESULT_FILE, read_result, write_parquet_atomic

SUMMARY_PARQUET = "summary.parquet"
SUMMARY_CSV = "summary.csv"

IDENTITY_COLUMNS = ["model", "precision", "backend", "family", "batch", "hardware", "device", "dataset", "status", "reason"]
METRIC_COLUMNS = [
    "qps",
    "tokens_per_s",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "ttft_ms",
    "tpot_ms",
    "peak_memory_gb",
    "weight_memory_gb",
    "n_iterations",
]
TRAILING_COLUMNS = ["job_dir", "config_hash", "started_at", "finished_at"]
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
    ("ttft_ms", "TTFT ms"),
    ("tpot_ms", "TPOT ms"),
    ("peak_memory_gb", "peak GB"),
    ("weight_memory_gb", "weights GB"),
    ("ppl", "ppl"),
    ("kld_mean", "KLD"),
    ("top1_agree", "top-1 %"),
    ("pubmedqa_acc", "PubMedQA"),
    ("reason", "reason"),
]


def job_directories(sweep_dir: Path) -> list[Path]:
    """Directories holding a result.json or Hydra's record of a started job."""
    found = {path.parent for path in sweep_dir.rglob(RESULT_FILE)}
    found |= {path.parent.parent for path in sweep_dir.rglob(".hydra/config.yaml")}
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
                model=OmegaConf.select(config, "model.name"),
                precision=OmegaConf.select(config, "precision.name"),
                backend=OmegaConf.select(config, "precision.backend"),
                family=OmegaConf.select(config, "model.family"),
                batch=OmegaConf.select(config, "batch"),
                hardware=OmegaConf.select(config, "hardware.name"),
                dataset=OmegaConf.select(config, "dataset.name"),
            )
        except Exception:  # noqa: BLE001 - the row says what we know; the reason already says why
            pass
    return row


def result_row(data: dict[str, Any]) -> dict[str, Any]:
    """One flat row: identity, status, every scalar metric."""
    row: dict[str, Any] = dict(data.get("identity", {}))
    row["status"] = data.get("status")
    row["reason"] = data.get("reason")
    for key, value in (data.get("metrics") or {}).items():
        if value is None or isinstance(value, (bool, int, float, str)):
            row[key] = value
    row["config_hash"] = data.get("config_hash")
    row["started_at"] = data.get("started_at")
    row["finished_at"] = data.get("finished_at")
    return row


def _read_row(job_dir: Path) -> dict[str, Any]:
    path = job_dir / RESULT_FILE
    if not path.exists():
        row = _unfinished_row(job_dir)
    else:
        try:
            row = result_row(read_result(path))
        except (OSError, json.JSONDecodeError) as error:
            row = {"status": "failed", "reason": f"unreadable {RESULT_FILE}: {error}"}
    row["job_dir"] = str(job_dir)
    return row


def _harmonise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every row every column, and one type per column (ints become floats beside floats)."""
    columns = list(dict.fromkeys(IDENTITY_COLUMNS + METRIC_COLUMNS))
    for row in rows:
        columns += [key for key in row if key not in columns]
    columns = [column for column in columns if column not in TRAILING_COLUMNS] + TRAILING_COLUMNS
    for column in columns:
        kinds = {type(row.get(column)) for row in rows} - {type(None)}
        if kinds <= {int, float} and float in kinds:
            for row in rows:
                if isinstance(row.get(column), int):
                    row[column] = float(row[column])
        elif len(kinds) > 1:  # mixed kinds (e.g. str and float): keep the text
            for row in rows:
                if row.get(column) is not None:
                    row[column] = str(row[column])
    return [{column: row.get(column) for column in columns} for row in rows]


def frame_from_rows(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    rows = _harmonise(list(rows))
    if not rows:
        return pl.DataFrame({column: [] for column in IDENTITY_COLUMNS + METRIC_COLUMNS + TRAILING_COLUMNS})
    return pl.DataFrame(rows, infer_schema_length=None)


def collect_sweep(sweep_dir: Path) -> pl.DataFrame:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory not found: {sweep_dir}")
    return frame_from_rows(_read_row(job_dir) for job_dir in job_directories(sweep_dir))


def write_summary(sweep_dir: Path) -> pl.DataFrame:
    frame = collect_sweep(sweep_dir)
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
    shown = [(column, header) for column, header in TABLE_COLUMNS if column in frame.columns and frame[column].null_count() < frame.height]
    for column, header in shown:
        justify = "right" if frame.schema[column].is_numeric() else "left"
        table.add_column(header, justify=justify, overflow="fold", max_width=60 if column == "reason" else None)
    for row in frame.iter_rows(named=True):
        style = {"ok": None, "skipped": "yellow", "failed": "red"}.get(row.get("status"))
        table.add_row(*(_format(row.get(column)) for column, _ in shown), style=style)
    return table


def print_table(frame: pl.DataFrame, title: str) -> None:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file or pipe: do not wrap the table at 80 columns
        console = Console(width=200)
    console.print(render_table(frame, title))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantbench collect", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (e.g. multirun/2026-11-22/12-00-00)")
    args = parser.parse_args(argv)
    try:
        frame = write_summary(args.sweep_dir)
    except FileNotFoundError as error:
        print(f"quantbench collect: {error}", file=sys.stderr)
        return 2
    print_table(frame, f"{args.sweep_dir} ({frame.height} jobs)")
    print(f"wrote {args.sweep_dir / SUMMARY_PARQUET} and {args.sweep_dir / SUMMARY_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
