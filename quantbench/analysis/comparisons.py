"""Every configuration of a sweep against its baseline: throughput ratios and paired accuracy.

A configuration's baseline is the job with the baseline precision and the same model,
hardware, dataset and generation length (and, per batch, the same batch size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from quantbench.analysis.stats import (
    RatioTest,
    StatsSettings,
    compare_across_batches,
    compare_throughput,
    direction,
    make_sample,
    mcnemar_exact,
)
from quantbench.analysis.sweep import Sweep
from quantbench.quality import PREDICTIONS_FILE

# metric column -> the per-iteration work it counts
THROUGHPUT_METRICS = {"tokens_per_s": "n_generated_tokens", "qps": "batch"}

def _sample(iterations: pl.DataFrame, metric: str, batch: int):
    work_column = THROUGHPUT_METRICS[metric]
    seconds = iterations.get_column("latency_ms").to_numpy() / 1e3
    if work_column in iterations.columns:
        work = iterations.get_column(work_column).to_numpy()
    else:  # older files without a batch column: the job's batch size
        work = [batch] * len(seconds)
    return make_sample(work, seconds)


def _row(group: dict[str, Any], metric: str, batch: int | None, precision: str, baseline: str,
         test: RatioTest | None, settings: StatsSettings, note: str) -> dict[str, Any]:
    n_min = min(test.n_baseline, test.n_candidate) if test else 0
    if test and batch is not None and n_min < settings.min_iterations and not note:
        note = f"only {n_min} iterations (< {settings.min_iterations}): interval is rough"
    return {
        **group,
        "metric": metric,
        "batch": batch,
        "precision": precision,
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


def throughput_comparisons(sweep: Sweep, settings: StatsSettings) -> pl.DataFrame:
    """One row per (group, metric, batch, precision), plus a geometric-mean row (batch null)."""
    ok = sweep.ok
    group_columns = sweep.group_columns()
    rows: list[dict[str, Any]] = []
    groups = ok.partition_by(group_columns, as_dict=True, maintain_order=True) if group_columns else {(): ok}
    for group_key, frame in groups.items():
        group = dict(zip(group_columns, group_key))
        for metric in THROUGHPUT_METRICS:
            rows += _metric_rows(sweep, frame, group, metric, settings)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _metric_rows(sweep: Sweep, frame: pl.DataFrame, group: dict[str, Any], metric: str,
                 settings: StatsSettings) -> list[dict[str, Any]]:
    baseline = settings.baseline
    rows: list[dict[str, Any]] = []
    pairs_by_precision: dict[str, list[tuple[Any, Any]]] = {}
    key_prefix = "|".join(f"{value}" for value in group.values())
    for batch in sorted(frame.get_column("batch").unique().to_list()):
        at_batch = frame.filter(pl.col("batch") == batch)
        base_rows = at_batch.filter(pl.col("precision") == baseline)
        base_iterations = sweep.iterations(base_rows.get_column("job_dir")[0]) if base_rows.height else None
        for precision in at_batch.get_column("precision").unique(maintain_order=True).to_list():
            if precision == baseline:
                continue
            candidate = at_batch.filter(pl.col("precision") == precision)
            iterations = sweep.iterations(candidate.get_column("job_dir")[0])
            if base_iterations is None or iterations is None:
                missing = f"no {baseline} result at batch {batch}" if base_iterations is None else "no iterations.parquet"
                rows.append(_row(group, metric, batch, precision, baseline, None, settings, missing))
                continue
            base_sample = _sample(base_iterations, metric, batch)
            sample = _sample(iterations, metric, batch)
            test = compare_throughput(base_sample, sample, settings, f"{key_prefix}|{metric}|{batch}|{precision}")
            note = "several jobs share this configuration; the first is used" if candidate.height > 1 else ""
            rows.append(_row(group, metric, batch, precision, baseline, test, settings, note))
            pairs_by_precision.setdefault(precision, []).append((base_sample, sample))
    for precision, pairs in pairs_by_precision.items():
        if len(pairs) < 2:
            continue  # one batch size: its row already is the overall answer
        overall = compare_across_batches(pairs, settings, f"{key_prefix}|{metric}|all|{precision}")
        note = f"geometric mean over {len(pairs)} batch sizes"
        rows.append(_row(group, metric, None, precision, baseline, overall, settings, note))
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


def accuracy_comparisons(sweep: Sweep, settings: StatsSettings) -> pl.DataFrame:
    """McNemar's test of each precision's per-question correctness against the baseline's.

    Correctness does not depend on the batch size, so each precision's first job with
    predictions stands for all of its batches.
    """
    ok = sweep.ok
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
