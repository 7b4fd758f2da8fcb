"""A sweep directory as the analysis reads it: the summary table plus each job's own files.

The summary (`summary.parquet`, one row per job) carries the headline numbers; the job
directories carry what the summary cannot: per-iteration samples for the statistics, the
resolved config and environment for the roofline and the hardware numbers, and per-question
predictions for paired accuracy tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from quantbench.collect import SUMMARY_PARQUET, collect_sweep
from quantbench.errors import QuantbenchError
from quantbench.results import ITERATIONS_FILE, RESULT_FILE, read_result

# Rows that differ only in precision (and batch) are compared with each other; everything else
# that identifies a job must match its baseline's.
GROUP_COLUMNS = ("model", "family", "hardware", "device", "dataset", "max_new_tokens")


@dataclass
class Sweep:
    directory: Path
    summary: pl.DataFrame
    _results: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    _iterations: dict[str, pl.DataFrame | None] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> pl.DataFrame:
        return self.summary.filter(pl.col("status") == "ok") if "status" in self.summary.columns else self.summary

    def group_columns(self) -> list[str]:
        return [column for column in GROUP_COLUMNS if column in self.summary.columns]

    def job_path(self, job_dir: str | None) -> Path | None:
        """A job directory named in the summary: absolute, or relative to the sweep directory."""
        if not job_dir:
            return None
        path = Path(job_dir)
        candidates = [path] if path.is_absolute() else [self.directory / path, Path.cwd() / path]
        candidates.append(self.directory / path.name)  # the sweep directory was moved or copied
        return next((candidate for candidate in candidates if candidate.is_dir()), None)

    def result(self, job_dir: str | None) -> dict[str, Any] | None:
        key = str(job_dir)
        if key not in self._results:
            path = self.job_path(job_dir)
            file = path / RESULT_FILE if path else None
            self._results[key] = read_result(file) if file and file.is_file() else None
        return self._results[key]

    def iterations(self, job_dir: str | None) -> pl.DataFrame | None:
        key = str(job_dir)
        if key not in self._iterations:
            path = self.job_path(job_dir)
            file = path / ITERATIONS_FILE if path else None
            self._iterations[key] = pl.read_parquet(file) if file and file.is_file() else None
        return self._iterations[key]

    def first_result(self) -> dict[str, Any] | None:
        """The result.json of the first ok job (of any job, when none is ok): config and environment."""
        if "job_dir" not in self.summary.columns:
            return None
        job_dirs = [*self.ok.get_column("job_dir").to_list(), *self.summary.get_column("job_dir").to_list()]
        for job_dir in job_dirs:
            result = self.result(job_dir)
            if result is not None:
                return result
        return None


def _summary_is_current(sweep_dir: Path) -> bool:
    summary = sweep_dir / SUMMARY_PARQUET
    if not summary.is_file():
        return False
    written = summary.stat().st_mtime
    return all(result.stat().st_mtime <= written for result in sweep_dir.rglob(RESULT_FILE))


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read the sweep's summary, collecting it first when it is missing or older than a result."""
    directory = Path(sweep_dir).expanduser()
    if not directory.is_dir():
        raise QuantbenchError(f"sweep directory '{directory}' does not exist; pass the directory a sweep wrote")
    summary = pl.read_parquet(directory / SUMMARY_PARQUET) if _summary_is_current(directory) else collect_sweep(directory)
    if summary.height == 0:
        raise QuantbenchError(f"'{directory}' holds no job results (no result.json below it); run a sweep first")
    missing = [column for column in ("precision", "batch") if column not in summary.columns]
    if missing:
        raise QuantbenchError(f"the summary of '{directory}' lacks the columns {missing}; re-run quantbench collect")
    return Sweep(directory, summary)


def precision_order(frame: pl.DataFrame, baseline: str) -> list[str]:
    """Baseline first, then by weight memory from largest to smallest (fp32, bf16, int8, nf4)."""
    precisions = frame.get_column("precision").unique(maintain_order=True).to_list()
    if "weight_memory_gb" in frame.columns:
        sizes = dict(
            frame.group_by("precision")
            .agg(pl.col("weight_memory_gb").median())
            .iter_rows()
        )
        precisions.sort(key=lambda name: -(sizes.get(name) if sizes.get(name) is not None else -1.0))
    precisions.sort(key=lambda name: name != baseline)  # stable: keeps the memory order otherwise
    return precisions


def column_or_none(frame: pl.DataFrame, name: str) -> pl.Series | None:
    """A column that exists and holds at least one value."""
    if name not in frame.columns or frame.get_column(name).null_count() == frame.height:
        return None
    return frame.get_column(name)
