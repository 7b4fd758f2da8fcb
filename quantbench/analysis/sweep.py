"""Sweep directories as the analysis reads them: the summary table plus each job's own files.

The summary (`summary.parquet`, one row per job) carries the headline numbers and every fact the
job recorded (hardware price, bandwidth and their sources, KV-cache bytes per token); the job
directories carry what the summary cannot: per-iteration samples for the statistics, the resolved
config and environment, and per-question predictions for paired accuracy tests. Nothing else is
read: not the model cache, not this machine.

Several sweeps (one per machine, say) are read as one: their summaries merged, each row naming
its sweep directory (`sweep_dir`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from quantbench.collect.sweeps import (
    SUMMARY_PARQUET,
    SWEEP_COLUMN,
    collect_sweep,
    job_directories,
    locate_job_dir,
    merge_summaries,
)
from quantbench.config.schema import AnalysisConfig
from quantbench.errors import QuantbenchError, UnreadableResult
from quantbench.jobdir import ITERATIONS_FILE, RESULT_FILE, read_result

# Rows that differ only in precision (and batch) are compared with each other; everything else
# that identifies a job must match its baseline's. A column a sweep lacks (no `engine` before
# there were engines) is one value for all its rows.
GROUP_COLUMNS = ("model", "family", "hardware", "device", "scenario", "engine", "dataset", "max_new_tokens")
# Offline rows of a sweep across engines (precision=fp32,gguf-q4_k_m) are named "precision · engine"
# in every table, figure, finding and recommendation; the engine is then part of the configuration,
# compared with the baseline like a precision, not a group of its own.
ENGINE_LABEL_SEPARATOR = " · "
OFFLINE_DEFAULT_ENGINE = "transformers"  # offline rows from before the engine was recorded
_SOURCE_COLUMN = "_quantbench_iterations_file"  # while reading every job's iterations at once


@dataclass
class Sweep:
    directories: list[Path]  # in the order given; the first names the sweep and holds the default baseline hardware
    summary: pl.DataFrame
    _results: dict[str, dict[str, Any] | None] = field(default_factory=dict, repr=False)
    _iterations: dict[str, pl.DataFrame | None] = field(default_factory=dict, repr=False)

    @property
    def directory(self) -> Path:
        return self.directories[0]

    @property
    def merged(self) -> bool:
        return len(self.directories) > 1

    @property
    def ok(self) -> pl.DataFrame:
        return self.summary.filter(pl.col("status") == "ok") if "status" in self.summary.columns else self.summary

    @property
    def offline_ok(self) -> pl.DataFrame:
        """The ok rows of the offline scenario: one timed batch each (serving rows are load levels)."""
        ok = self.ok
        return ok.filter(pl.col("scenario").fill_null("offline") != "serve") if "scenario" in ok.columns else ok

    @property
    def engines_in_labels(self) -> bool:
        """Whether the offline rows' precisions name their engine (a sweep across engines)."""
        return ENGINE_COLUMN_LABELLED in self.summary.columns

    def group_columns(self) -> list[str]:
        return [
            column
            for column in GROUP_COLUMNS
            if column in self.summary.columns and not (column == "engine" and self.engines_in_labels)
        ]

    def labelled_precision(self, precision: str) -> str:
        """The name `precision` has in this sweep's tables: `precision · transformers` in a sweep across engines."""
        if not self.engines_in_labels or ENGINE_LABEL_SEPARATOR in precision:
            return precision
        return f"{precision}{ENGINE_LABEL_SEPARATOR}{OFFLINE_DEFAULT_ENGINE}"

    def job_path(self, job_dir: str | None) -> Path | None:
        """A job directory named in the summary (absolute in a merged summary)."""
        return locate_job_dir(self.directory, job_dir)

    def result(self, job_dir: str | None) -> dict[str, Any] | None:
        """The job's result.json, upgraded to this schema version; None when it cannot be read."""
        key = str(job_dir)
        if key not in self._results:
            path = self.job_path(job_dir)
            try:
                self._results[key] = read_result(path).to_json() if path else None
            except UnreadableResult:
                self._results[key] = None  # the summary's row already says why
        return self._results[key]

    def iterations(self, job_dir: str | None) -> pl.DataFrame | None:
        key = str(job_dir)
        if not self._iterations:
            self._read_all_iterations()
        if key not in self._iterations:
            path = self.job_path(job_dir)
            file = path / ITERATIONS_FILE if path else None
            self._iterations[key] = pl.read_parquet(file) if file and file.is_file() else None
        return self._iterations[key]

    def _read_all_iterations(self) -> None:
        """Every ok job's iterations in one read: polars reads thousands of small files in parallel
        where one read per file cost most of a 10,000-job report. Files whose columns differ (jobs
        of several quantbench versions) are read one by one, as they are asked for."""
        if "job_dir" not in self.summary.columns:
            return
        listed = self.ok.get_column("job_dirs").to_list() if "job_dirs" in self.ok.columns else []
        names = {str(job_dir) for job_dir in self.ok.get_column("job_dir").to_list() if job_dir}
        names |= {str(job_dir) for text in listed if text for job_dir in json.loads(text)}
        files = {}
        for name in names:
            path = self.job_path(name)
            if path is not None and (path / ITERATIONS_FILE).is_file():
                files[str(path / ITERATIONS_FILE)] = name
        if len(files) < 2:
            return
        try:
            frame = pl.read_parquet(list(files), include_file_paths=_SOURCE_COLUMN)
        except (pl.exceptions.PolarsError, OSError):
            return
        for (file,), part in frame.partition_by(_SOURCE_COLUMN, as_dict=True).items():
            self._iterations[files[file]] = part.drop(_SOURCE_COLUMN)

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


ENGINE_COLUMN_LABELLED = "precision_name"  # the precision as configured, kept beside the "precision · engine" label


def with_engine_labels(summary: pl.DataFrame) -> pl.DataFrame:
    """The summary with offline rows named "precision · engine" when they ran on more than one engine."""
    if "engine" not in summary.columns or "precision" not in summary.columns:
        return summary
    offline = pl.col("scenario").fill_null("offline") != "serve" if "scenario" in summary.columns else pl.lit(True)
    engine = pl.col("engine").fill_null(OFFLINE_DEFAULT_ENGINE)
    engines = summary.filter(offline & pl.col("precision").is_not_null()).select(engine.unique()).to_series()
    if engines.len() < 2:
        return summary
    return summary.with_columns(
        pl.col("precision").alias(ENGINE_COLUMN_LABELLED),
        pl.when(offline & pl.col("precision").is_not_null())
        .then(pl.col("precision") + ENGINE_LABEL_SEPARATOR + engine)
        .otherwise(pl.col("precision"))
        .alias("precision"),
        pl.when(offline).then(engine).otherwise(pl.col("engine")).alias("engine"),
    )


def without_engine_labels(summary: pl.DataFrame) -> pl.DataFrame:
    if ENGINE_COLUMN_LABELLED not in summary.columns:
        return summary
    return summary.with_columns(pl.col(ENGINE_COLUMN_LABELLED).alias("precision")).drop(ENGINE_COLUMN_LABELLED)


def _summary_is_current(sweep_dir: Path) -> bool:
    summary = sweep_dir / SUMMARY_PARQUET
    if not summary.is_file():
        return False
    written = summary.stat().st_mtime
    results = (job_dir / RESULT_FILE for job_dir in job_directories(sweep_dir))
    return all(not result.is_file() or result.stat().st_mtime <= written for result in results)


def load_sweep(sweep_dir: str | Path) -> Sweep:
    """Read the sweep's summary, collecting it first when it is missing or older than a result."""
    directory = Path(sweep_dir).expanduser()
    if not directory.is_dir():
        raise QuantbenchError(f"sweep directory '{directory}' does not exist; pass the directory a sweep wrote")
    summary = (
        pl.read_parquet(directory / SUMMARY_PARQUET) if _summary_is_current(directory) else collect_sweep(directory)
    )
    if summary.height == 0:
        raise QuantbenchError(f"'{directory}' holds no job results (no result.json below it); run a sweep first")
    missing = [column for column in ("precision", "batch") if column not in summary.columns]
    if missing:
        raise QuantbenchError(f"the summary of '{directory}' lacks the columns {missing}; re-run quantbench collect")
    return Sweep([directory], with_engine_labels(summary))


def load_sweeps(sweep_dirs: str | Path | list[str | Path]) -> Sweep:
    """One sweep directory, or several read as one (their summaries merged)."""
    if isinstance(sweep_dirs, (str, Path)):
        sweep_dirs = [sweep_dirs]
    if len(sweep_dirs) == 1:
        return load_sweep(sweep_dirs[0])
    sweeps = [load_sweep(sweep_dir) for sweep_dir in sweep_dirs]
    resolved = [sweep.directory.resolve() for sweep in sweeps]
    repeated = sorted({str(path) for path in resolved if resolved.count(path) > 1})
    if repeated:
        raise QuantbenchError(f"sweep directory {', '.join(repeated)} given more than once; name each sweep once")
    # Labelled once, on the merged rows: one sweep's engines alone may not differ.
    summary = merge_summaries([(sweep.directory, without_engine_labels(sweep.summary)) for sweep in sweeps])
    return Sweep([sweep.directory for sweep in sweeps], with_engine_labels(summary))


def recorded_settings(sweep_dir: str | Path, **overrides: Any) -> AnalysisConfig:
    """The `analysis` settings the sweep ran with (`quantbench report` repeats them), then the
    `overrides` that are not None; defaults where the sweep cannot be read (its error comes later)."""
    try:
        result = load_sweep(sweep_dir).first_result() or {}
    except QuantbenchError:
        result = {}
    return AnalysisConfig.from_values((result.get("config") or {}).get("analysis"), **overrides)


def first_directory_rows(sweep: Sweep, frame: pl.DataFrame) -> pl.DataFrame:
    """The rows of `frame` that come from the first sweep directory given."""
    if not sweep.merged or SWEEP_COLUMN not in frame.columns:
        return frame
    return frame.filter(pl.col(SWEEP_COLUMN) == str(sweep.directory.resolve()))


def precision_order(frame: pl.DataFrame, baseline: str) -> list[str]:
    """Baseline first, then by weight memory from largest to smallest (fp32, bf16, int8, nf4)."""
    precisions = frame.get_column("precision").unique(maintain_order=True).to_list()
    if "weight_memory_gb" in frame.columns:
        sizes = dict(frame.group_by("precision").agg(pl.col("weight_memory_gb").median()).iter_rows())
        precisions.sort(key=lambda name: -(sizes.get(name) if sizes.get(name) is not None else -1.0))
    precisions.sort(key=lambda name: name != baseline)  # stable: keeps the memory order otherwise
    return precisions


def column_or_none(frame: pl.DataFrame, name: str) -> pl.Series | None:
    """A column that exists and holds at least one value."""
    if name not in frame.columns or frame.get_column(name).null_count() == frame.height:
        return None
    return frame.get_column(name)
