"""Every configuration of a sweep against its baseline: throughput ratios and paired accuracy.

Along the precision axis, a configuration's baseline is the job with the baseline precision and
the same model, hardware, dataset and generation length (and, per batch, the same batch size).
Along the hardware axis (several machines), it is the same configuration (model, precision,
engine, dataset, generation length, batch size) on the baseline hardware.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from quantbench.analysis.hardware_axis import HARDWARE_AXIS
from quantbench.analysis.stats import (
    RatioTest,
    compare_across_batches,
    compare_repeat_rates,
    compare_throughput,
    direction,
    make_sample,
    mcnemar_exact,
    throughput,
)
from quantbench.analysis.sweep import GROUP_COLUMNS, Sweep, column_or_none
from quantbench.config.schema import AnalysisConfig
from quantbench.jobdir import PREDICTIONS_FILE
from quantbench.quality.intervals import paired_difference_interval

# metric column -> the per-iteration work it counts
THROUGHPUT_METRICS = {"tokens_per_s": "n_generated_tokens", "qps": "batch"}
# Energy efficiency: the same work per joule instead of per second (iterations.parquet energy_j,
# read around each timed iteration; quantbench/measure/energy.py). Compared where both jobs have it.
ENERGY_METRICS = {"tokens_per_kwh": "n_generated_tokens"}
# Like with like across machines: everything that identifies a configuration except the machine.
HARDWARE_LIKE_COLUMNS = (*(column for column in GROUP_COLUMNS if column not in ("hardware", "device")), "precision")
# The `interval` column of a comparison: what its ci_low/ci_high (and p) take as the unit.
INTERVAL_REPEATS = "repeats"  # t over each repeat's rate (bench.repeats >= 2): between-run variance
INTERVAL_ITERATIONS = "iterations"  # bootstrap over one job's iterations: noise within a job only


def _sample(iterations: pl.DataFrame, metric: str, batch: int):
    """(work, seconds) per iteration; for an energy metric (work, joules), None where the job has no energy readings."""
    if metric in ENERGY_METRICS:
        if (
            "energy_j" not in iterations.columns
            or iterations.get_column("energy_j").null_count()
            or not (iterations.get_column("energy_j") > 0).all()
        ):
            return None
        return make_sample(
            iterations.get_column(ENERGY_METRICS[metric]).to_numpy(), iterations.get_column("energy_j").to_numpy()
        )
    work_column = THROUGHPUT_METRICS[metric]
    seconds = iterations.get_column("latency_ms").to_numpy() / 1e3
    if work_column in iterations.columns:
        work = iterations.get_column(work_column).to_numpy()
    else:  # older files without a batch column: the job's batch size
        work = [batch] * len(seconds)
    return make_sample(work, seconds)


def _row(
    group: dict[str, Any],
    metric: str,
    batch: int | None,
    axis: str,
    value: str,
    baseline: str,
    test: RatioTest | None,
    settings: AnalysisConfig,
    note: str,
    within: RatioTest | None = None,
) -> dict[str, Any]:
    """`test`: over repeats when `within` (the bootstrap over iterations, a lower bound) is given."""
    n_min = min(test.n_baseline, test.n_candidate) if test else 0
    if test and within is None and batch is not None and n_min < settings.warn_below_iterations and not note:
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
        "direction": _direction(metric, test, settings) if test else "not compared",
        "n_baseline": test.n_baseline if test else None,
        "n_candidate": test.n_candidate if test else None,
        "interval": (INTERVAL_REPEATS if within is not None else INTERVAL_ITERATIONS) if test else None,
        "ci_low_within": (within or test).ci_low if test else None,
        "ci_high_within": (within or test).ci_high if test else None,
        "note": note,
    }


def repeat_job_dirs(row: dict[str, Any]) -> list[str]:
    """The job directories of a summary row's repeats (quantbench.collect.repeats); its own job_dir alone
    for a configuration run once."""
    listed = row.get("job_dirs")
    if isinstance(listed, str) and listed:
        try:
            return [str(job_dir) for job_dir in json.loads(listed)]
        except ValueError:
            pass
    return [row["job_dir"]] if row.get("job_dir") else []


def _repeat_rates(sweep: Sweep, row: dict[str, Any], metric: str, batch: int) -> list[float]:
    """Each repeat's rate (total work / total time of its timed iterations)."""
    rates = []
    for job_dir in repeat_job_dirs(row):
        iterations = sweep.iterations(job_dir)
        sample = _sample(iterations, metric, batch) if iterations is not None else None
        if sample is not None and sample.shape[1]:
            rates.append(float(throughput(sample)))
    return rates


def _direction(metric: str, test: RatioTest, settings: AnalysisConfig) -> str:
    said = direction(test, settings.alpha)
    if metric in ENERGY_METRICS:  # more work per joule is more efficient, not faster
        return {"faster": "more efficient", "slower": "less efficient"}.get(said, said)
    return said


def throughput_comparisons(sweep: Sweep, settings: AnalysisConfig) -> pl.DataFrame:
    """Each precision against the baseline precision: one row per (group, metric, batch,
    precision), plus a geometric-mean row (batch null). Tokens per kWh joins tokens/s and QPS
    where the sweep measured energy."""
    frame = sweep.offline_ok
    metrics = [*THROUGHPUT_METRICS, *(ENERGY_METRICS if column_or_none(frame, "energy_j") is not None else ())]
    return _comparisons(sweep, frame, sweep.group_columns(), "precision", settings.baseline, settings, metrics)


def hardware_comparisons(sweep: Sweep, table: pl.DataFrame, baseline: str, settings: AnalysisConfig) -> pl.DataFrame:
    """Each machine against the baseline machine (`table` has the hardware axis column): one row
    per (configuration, batch, machine) in generated tokens/s, plus a geometric mean over batches."""
    groups = [column for column in HARDWARE_LIKE_COLUMNS if column in table.columns]
    return _comparisons(sweep, table, groups, HARDWARE_AXIS, baseline, settings, ("tokens_per_s",))


def _comparisons(
    sweep: Sweep,
    frame: pl.DataFrame,
    group_columns: list[str],
    axis: str,
    baseline: str,
    settings: AnalysisConfig,
    metrics,
) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    groups = frame.partition_by(group_columns, as_dict=True, maintain_order=True) if group_columns else {(): frame}
    for group_key, part in groups.items():
        group = dict(zip(group_columns, group_key))
        for metric in metrics:
            rows += _metric_rows(sweep, part, group, metric, axis, baseline, settings)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def _metric_rows(
    sweep: Sweep,
    frame: pl.DataFrame,
    group: dict[str, Any],
    metric: str,
    axis: str,
    baseline: str,
    settings: AnalysisConfig,
) -> list[dict[str, Any]]:
    """Along `axis` (precision, or the machine), every value against `baseline`, batch by batch."""
    rows: list[dict[str, Any]] = []
    pairs_by_value: dict[str, list[tuple[Any, Any]]] = {}
    repeat_pairs: dict[str, list[tuple[list[float], list[float]]]] = {}
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
                missing = (
                    f"no {baseline} result at batch {batch}" if base_iterations is None else "no iterations.parquet"
                )
                rows.append(_row(group, metric, batch, axis, value, baseline, None, settings, missing))
                continue
            base_sample = _sample(base_iterations, metric, batch)
            sample = _sample(iterations, metric, batch)
            if base_sample is None or sample is None:
                missing = f"no energy readings for {baseline if base_sample is None else value} at batch {batch}"
                rows.append(_row(group, metric, batch, axis, value, baseline, None, settings, missing))
                continue
            test = compare_throughput(base_sample, sample, settings, f"{key_prefix}|{metric}|{batch}|{value}")
            note = "several jobs share this configuration; the first is used" if candidate.height > 1 else ""
            pairs_by_value.setdefault(value, []).append((base_sample, sample))
            # Repeats (bench.repeats >= 2 on both sides): the repeat is the unit; the bootstrap over
            # one job's iterations stays beside it as a lower bound (ci_low_within/ci_high_within).
            rates = (
                _repeat_rates(sweep, base_rows.row(0, named=True), metric, batch),
                _repeat_rates(sweep, candidate.row(0, named=True), metric, batch),
            )
            if min(map(len, rates)) >= 2:
                repeat_pairs.setdefault(value, []).append(rates)
                rows.append(
                    _row(
                        group,
                        metric,
                        batch,
                        axis,
                        value,
                        baseline,
                        compare_repeat_rates([rates], settings),
                        settings,
                        note,
                        within=test,
                    )
                )
            else:
                rows.append(_row(group, metric, batch, axis, value, baseline, test, settings, note))
    for value, pairs in pairs_by_value.items():
        if len(pairs) < 2:
            continue  # one batch size: its row already is the overall answer
        overall = compare_across_batches(pairs, settings, f"{key_prefix}|{metric}|all|{value}")
        note = f"geometric mean over {len(pairs)} batch sizes"
        if len(repeat_pairs.get(value, [])) == len(pairs):
            over_repeats = compare_repeat_rates(repeat_pairs[value], settings)
            rows.append(_row(group, metric, None, axis, value, baseline, over_repeats, settings, note, within=overall))
        else:
            rows.append(_row(group, metric, None, axis, value, baseline, overall, settings, note))
    return rows


def read_predictions(job_path: Path | None) -> pl.DataFrame | None:
    """Per-question answers (question_id, prediction, correct) that a PubMedQA quality run left, if any."""
    file = job_path / PREDICTIONS_FILE if job_path else None
    if file is None or not file.is_file():
        return None
    frame = pl.read_parquet(file)
    if "prediction" not in frame.columns:  # correctness alone: the pairs' agreement is unknown
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("prediction"))
    return (
        frame.select("question_id", "prediction", "correct")
        .with_columns(
            pl.col("question_id").cast(pl.Utf8), pl.col("prediction").cast(pl.Utf8), pl.col("correct").cast(pl.Boolean)
        )
        .unique(subset="question_id", keep="first", maintain_order=True)
    )


def accuracy_comparisons(sweep: Sweep, settings: AnalysisConfig) -> pl.DataFrame:
    """McNemar's test of each precision's per-question correctness against the baseline's, the
    accuracy difference's paired interval and how often the two give the same answer.

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
            test = mcnemar_exact(
                paired.get_column("correct").to_list(), paired.get_column("correct_candidate").to_list()
            )
            both = int((paired.get_column("correct") & paired.get_column("correct_candidate")).sum())
            low, high = paired_difference_interval(
                test.only_candidate_correct,
                test.only_baseline_correct,
                both,
                test.n_questions - both - test.only_candidate_correct - test.only_baseline_correct,
                settings.confidence,
            )
            # An unparsed answer (generate mode) agrees with nothing, not even another unparsed one.
            same = paired.get_column("prediction").eq(paired.get_column("prediction_candidate")).fill_null(False)
            recorded = (
                paired.get_column("prediction").is_not_null().any()
                or paired.get_column("prediction_candidate").is_not_null().any()
            )
            rows.append(
                {
                    **group,
                    "precision": precision,
                    "baseline": settings.baseline,
                    "n_questions": test.n_questions,
                    "baseline_accuracy": test.baseline_accuracy,
                    "accuracy": test.candidate_accuracy,
                    "accuracy_difference_points": (test.candidate_accuracy - test.baseline_accuracy) * 100,
                    "accuracy_difference_ci_low_points": low * 100,
                    "accuracy_difference_ci_high_points": high * 100,
                    "answer_agreement": float(same.mean()) if paired.height and recorded else None,
                    "only_baseline_correct": test.only_baseline_correct,
                    "only_candidate_correct": test.only_candidate_correct,
                    "p_value": test.p_value,
                    "significant": test.p_value < settings.alpha,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()


def interval_note(comparisons: pl.DataFrame, confidence: float) -> str | None:
    """Which kind of interval a table of these comparisons shows, in one sentence."""
    if comparisons.height == 0 or "interval" not in comparisons.columns:
        return None
    kinds = set(comparisons.get_column("interval").drop_nulls().to_list())
    level = round(confidence * 100)
    if kinds == {INTERVAL_REPEATS}:
        return (
            f"Intervals: {level}% t-intervals over repeats (bench.repeats; each repeat's rate is one observation), "
            "which include the variance between runs; `n` counts repeats. The bootstrap over one job's iterations "
            "(`ci_low_within`, `ci_high_within` in the analysis) is narrower and only a lower bound."
        )
    within = (
        f"Intervals: {level}% bootstrap over the iterations of one job: the noise within a run, not between runs, "
        "so too narrow to compare sweeps or to trust a small difference; run with bench.repeats=3 for an interval "
        "over repeats."
    )
    if kinds == {INTERVAL_ITERATIONS}:
        return within
    return (
        "Intervals: over repeats where both configurations ran bench.repeats >= 2 times (column `interval` = repeats), "
        "else " + within[len("Intervals: ") :]
    )
