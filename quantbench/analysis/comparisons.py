"""Every configuration of a sweep against its baseline: throughput ratios and paired accuracy.

Along the precision axis, a configuration's baseline is the job with the baseline precision and
the same model, hardware, dataset and generation length (and, per batch, the same batch size).
Along the hardware axis (several machines), it is the same configuration (model, precision,
engine, dataset, generation length, batch size) on the baseline hardware.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from quantbench.analysis.hardware import HARDWARE_AXIS
from quantbench.analysis.stats import (
    RatioTest,
    compare_across_batches,
    compare_throughput,
    direction,
    make_sample,
    mcnemar_exact,
)
from quantbench.analysis.sweep import GROUP_COLUMNS, Sweep
from quantbench.jobdir import PREDICTIONS_FILE
from quantbench.schema import AnalysisConfig

# metric column -> the per-iteration work it counts
THROUGHPUT_METRICS = {"tokens_per_s": "n_generated_tokens", "qps": "batch"}
# Like with like across machines: everything that identifies a configuration except the machine.
HARDWARE_LIKE_COLUMNS = (*(column for column in GROUP_COLUMNS if column not in ("hardware", "device")), "precision")


def _sample(iterations: pl.DataFrame, metric: str, batch: int):
    work_column = THROUGHPUT_METRICS[metric]
    seconds = iterations.get_column("latency_ms").to_numpy() / 1e3
    if work_column in iterations.columns:
        work = iterations.get_column(work_column).to_numpy()
    else:  # older files without a batch column: the job's batch size
        work = [batch] * len(seconds)
    return make_sample(work, seconds)


def _row(group: dict[str, Any], metric: str, batch: int | None, axis: str, value: str, baseline: str,
         test: RatioTest | None, settings: AnalysisConfig, note: str) -> dict[str, Any]:
    n_min = min(test.n_baseline, test.n_candidate) if test else 0
    if test and batch is not None and n_min < settings.warn_below_iterations and not note:
        note = f"only {n_min} iterations (< {settings.warn_below_iterations}): interval is rough"
    return {
        **group,
        "metric": metric,
        "batch": batch,
        axis: value,
        "baseline": baseline,
        "ratio": test.ratio if test else None,
        "ci_low": test.ci_low if test else None,
        "ci_high": test.ci_high if test else None,
        "p_value": test.p_value if test else None,
        "direction": direction(test, settings.alpha) if test else "not compared",
        "n_baseline": test.n_baseline if test else None,
        "n_candidate": test.n_candidate if test else None,
        "note": note,
    }


def throughput_comparisons(sweep: Sweep, settings: AnalysisConfig) -> pl.DataFrame:
    """Each precision against the baseline precision: one row per (group, metric, batch,
    precision), plus a geometric-mean row (batch null)."""
    return _comparisons(sweep, sweep.offline_ok, sweep.group_columns(), "precision", settings.baseline, settings, THROUGHPUT_METRICS)


def hardware_comparisons(sweep: Sweep, table: pl.DataFrame, baseline: str, settings: AnalysisConfig) -> pl.DataFrame:
    """Each machine against the baseline machine (`table` has the hardware axis column): one row
    per (configuration, batch, machine) in generated tokens/s, plus a geometric mean over batches."""
    groups = [column for column in HARDWARE_LIKE_COLUMNS if column in table.columns]
    return _comparisons(sweep, table, groups, HARDWARE_AXIS, baseline, settings, ("tokens_per_s",))


def _comparisons(sweep: Sweep, frame: pl.DataFrame, group_columns: list[str], axis: str, baseline: str,
                 settings: AnalysisConfig, metrics) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    groups = frame.partition_by(group_columns, as_dict=True, maintain_order=True) if group_columns else {(): frame}
    for group_key, part in groups.items():
        group = dict(zip(group_columns, group_key))
        for metric in metrics:
            rows += _metric_rows(sweep, part, group, metric, axis, baseline, settings)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _metric_rows(sweep: Sweep, frame: pl.DataFrame, group: dict[str, Any], metric: str, axis: str, baseline: str,
                 settings: AnalysisConfig) -> list[dict[str, Any]]:
    """Along `axis` (precision, or the machine), every value against `baseline`, batch by batch."""
    rows: list[dict[str, Any]] = []
    pairs_by_value: dict[str, list[tuple[Any, Any]]] = {}
    key_prefix = "|".join(f"{value}" for value in group.values())
    for batch in sorted(frame.get_column("batch").unique().to_list()):
        at_batch = frame.filter(pl.col("batch") == batch)
        base_rows = at_batch.filter(pl.col(axis) == baseline)
        base_iterations = sweep.iterations(base_rows.get_column("job_dir")[0]) if base_rows.height else None
        for value in at_batch.get_column(axis).unique(maintain_order=True).to_list():
            if value == baseline:
                continue
            candidate = at_batch.filter(pl.col(axis) == value)
            iterations = sweep.iterations(candidate.get_column("job_dir")[0])
            if base_iterations is None or iterations is None:
                missing = f"no {baseline} result at batch {batch}" if base_iterations is None else "no iterations.parquet"
                rows.append(_row(group, metric, batch, axis, value, baseline, None, settings, missing))
                continue
            base_sample = _sample(base_iterations, metric, batch)
            sample = _sample(iterations, metric, batch)
            test = compare_throughput(base_sample, sample, settings, f"{key_prefix}|{metric}|{batch}|{value}")
            note = "several jobs share this configuration; the first is used" if candidate.height > 1 else ""
            rows.append(_row(group, metric, batch, axis, value, baseline, test, settings, note))
            pairs_by_value.setdefault(value, []).append((base_sample, sample))
    for value, pairs in pairs_by_value.items():
        if len(pairs) < 2:
            continue  # one batch size: its row already is the overall answer
        overall = compare_across_batches(pairs, settings, f"{key_prefix}|{metric}|all|{value}")
        note = f"geometric mean over {len(pairs)} batch sizes"
        rows.append(_row(group, metric, None, axis, value, baseline, overall, settings, note))
    return rows


def read_predictions(job_path: Path | None) -> pl.DataFrame | None:
    """Per-question correctness (question_id, correct) that a PubMedQA quality run left, if any."""
    file = job_path / PREDICTIONS_FILE if job_path else None
    if file is None or not file.is_file():
        return None
    frame = pl.read_parquet(file, columns=["question_id", "correct"])
    return frame.with_columns(pl.col("question_id").cast(pl.Utf8), pl.col("correct").cast(pl.Boolean)).unique(
        subset="question_id", keep="first", maintain_order=True
    )


def accuracy_comparisons(sweep: Sweep, settings: AnalysisConfig) -> pl.DataFrame:
    """McNemar's test of each precision's per-question correctness against the baseline's.

    Correctness does not depend on the batch size, so each precision's first job with
    predictions stands for all of its batches.
    """
    ok = sweep.offline_ok
    if "job_dir" not in ok.columns:
        return pl.DataFrame()
    group_columns = [column for column in sweep.group_columns() if column != "max_new_tokens"]
    rows: list[dict[str, Any]] = []
    groups = ok.partition_by(group_columns, as_dict=True, maintain_order=True) if group_columns else {(): ok}
    for group_key, frame in groups.items():
        group = dict(zip(group_columns, group_key))
        predictions: dict[str, pl.DataFrame] = {}
        for precision, job_dir in frame.select("precision", "job_dir").iter_rows():
            if precision not in predictions:
                found = read_predictions(sweep.job_path(job_dir))
                if found is not None:
                    predictions[precision] = found
        base = predictions.get(settings.baseline)
        if base is None:
            continue
        for precision, candidate in predictions.items():
            if precision == settings.baseline:
                continue
            paired = base.join(candidate, on="question_id", how="inner", suffix="_candidate")
            test = mcnemar_exact(paired.get_column("correct").to_list(), paired.get_column("correct_candidate").to_list())
            rows.append({
                **group,
                "precision": precision,
                "baseline": settings.baseline,
                "n_questions": test.n_questions,
                "baseline_accuracy": test.baseline_accuracy,
                "accuracy": test.candidate_accuracy,
                "accuracy_difference_points": (test.candidate_accuracy - test.baseline_accuracy) * 100,
                "only_baseline_correct": test.only_baseline_correct,
                "only_candidate_correct": test.only_candidate_correct,
                "p_value": test.p_value,
                "significant": test.p_value < settings.alpha,
            })
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
