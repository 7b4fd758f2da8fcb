"""The report's quality section: each precision's quality metrics with their intervals, its paired
statistics against the KL reference, the quality gate's verdicts, and paired PubMedQA accuracy
against the baseline question by question."""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_fixed, fmt_number, fmt_p, fmt_pct
from quantbench.analysis.sweep import column_or_none
from quantbench.report.config_tables import Column
from quantbench.report.document import Paragraph, Table
from quantbench.report.precisions import per_precision, per_precision_table

# The paired statistics against the KL reference (quantbench/quality/paired.py): column, header, formatter.
PAIRED_COLUMNS: tuple[Column, ...] = (
    ("ppl_ratio", "PPL ratio", lambda v: fmt_number(v, 4)),
    ("delta_p_mean", "mean Δp", lambda v: fmt_pct(v * 100, 3, signed=True)),
    ("delta_p_rms", "RMS Δp", lambda v: fmt_pct(v * 100, 3)),
    ("delta_p_p1", "Δp p1", lambda v: fmt_pct(v * 100, 2, signed=True)),
    ("delta_p_p99", "Δp p99", lambda v: fmt_pct(v * 100, 2, signed=True)),
    ("kld_p99", "KLD p99", lambda v: fmt_number(v, 3)),
    ("top1_agree", "same top-1 %", lambda v: fmt_number(v, 4)),
)


def quality_blocks(analysis: Analysis) -> list:
    blocks: list = []
    if analysis.quality:
        frame = per_precision(
            analysis,
            *(pl.col(column).drop_nulls().first() for column in _quality_columns(analysis)),
            pl.col("weight_memory_gb").first()
            if "weight_memory_gb" in analysis.table.columns
            else pl.lit(None).alias("weight_memory_gb"),
            pl.col("bits_per_weight").first()
            if "bits_per_weight" in analysis.table.columns
            else pl.lit(None).alias("bits_per_weight"),
        )
        blocks.append(
            per_precision_table(
                analysis,
                frame,
                (*(metric.label for metric in analysis.quality), "weights GB", "bits/weight"),
                lambda row: (
                    *(_with_interval(row, metric.column) for metric in analysis.quality),
                    fmt_number(row["weight_memory_gb"]),
                    "–" if row["bits_per_weight"] is None else fmt_fixed(row["bits_per_weight"], 2),
                ),
                (*(True for _ in analysis.quality), True, True),
            )
        )
        note = (analysis.sweep.first_result() or {}).get("config", {}).get("model", {}).get("note")
        if note:
            blocks.append(Paragraph(f"Model note: {note}."))
        blocks += _paired_quality(analysis)
        blocks += _quality_gate(analysis)
    else:
        blocks.append(
            Paragraph(
                "No quality metrics in this sweep (run with quality on to measure accuracy, perplexity and KL "
                "divergence)."
            )
        )
    accuracy = analysis.accuracy
    if accuracy.height:
        blocks.append(
            Paragraph(
                f"Paired accuracy against {analysis.settings.baseline}, question by question (McNemar's exact test on "
                "the questions that exactly one of the two answers correctly; the interval of Δ is Newcombe's paired "
                f"score interval at {round(analysis.settings.confidence * 100)}%; agreement: the share of questions "
                "both answer alike):"
            )
        )
        rows = tuple(
            (
                row["precision"],
                str(row["n_questions"]),
                fmt_pct(row["baseline_accuracy"] * 100),
                fmt_pct(row["accuracy"] * 100),
                f"{row['accuracy_difference_points']:+.1f}",
                _points_interval(
                    row.get("accuracy_difference_ci_low_points"), row.get("accuracy_difference_ci_high_points")
                ),
                fmt_pct(None if row.get("answer_agreement") is None else row["answer_agreement"] * 100),
                f"{row['only_baseline_correct']} / {row['only_candidate_correct']}",
                fmt_p(row["p_value"]),
                "yes" if row["significant"] else "no",
            )
            for row in accuracy.iter_rows(named=True)
        )
        blocks.append(
            Table(
                (
                    "Precision",
                    "questions",
                    f"{analysis.settings.baseline} accuracy",
                    "accuracy",
                    "Δ points",
                    "Δ interval",
                    "agreement",
                    f"only {analysis.settings.baseline} / only this correct",
                    "p",
                    f"significant at {analysis.settings.alpha}",
                ),
                rows,
                (False, True, True, True, True, True, True, True, True, False),
            )
        )
    return blocks


def _quality_columns(analysis: Analysis) -> list[str]:
    """Each quality metric, and its interval columns where the quality run wrote them."""
    columns = []
    for metric in analysis.quality:
        columns.append(metric.column)
        columns += [
            f"{metric.column}{end}"
            for end in ("_ci_low", "_ci_high")
            if f"{metric.column}{end}" in analysis.table.columns
        ]
    return columns


def _with_interval(row: dict[str, Any], column: str) -> str:
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    value = fmt_number(row[column], 4)
    return value if low is None or high is None else f"{value} [{fmt_number(low, 4)}–{fmt_number(high, 4)}]"


def _paired_quality(analysis: Analysis) -> list:
    """Each precision against the KL reference on the same tokens, as llama.cpp's KL-divergence report."""
    table = analysis.table
    if column_or_none(table, "ppl_ratio") is None:
        return []
    intervals = {
        "ppl_ratio": ("ppl_ratio_low", "ppl_ratio_high"),
        "top1_agree": ("top1_agree_ci_low", "top1_agree_ci_high"),
    }
    present = [column for column in PAIRED_COLUMNS if column[0] in table.columns]
    wanted = {
        column for name, _, _ in present for column in (name, *intervals.get(name, ())) if column in table.columns
    }
    frame = per_precision(
        analysis,
        *(pl.col(column).drop_nulls().first() for column in sorted(wanted)),
        pl.col("kld_reference").drop_nulls().first()
        if "kld_reference" in table.columns
        else pl.lit(None).alias("kld_reference"),
    )

    def cell(row: dict[str, Any], name: str, formatter: Callable[[Any], str]) -> str:
        if row.get(name) is None:
            return "–"
        low, high = (row.get(column) for column in intervals.get(name, ("", "")))
        return formatter(row[name]) + ("" if low is None or high is None else f" [{formatter(low)}–{formatter(high)}]")

    level = round(analysis.settings.confidence * 100)
    references = ", ".join(sorted({str(value) for value in frame.get_column("kld_reference").drop_nulls().to_list()}))
    return [
        Paragraph(
            f"Paired with the reference precision `{references or '?'}` on the same tokens (llama.cpp's KL-divergence "
            f"statistics): PPL ratio = PPL / PPL_reference with its {level}% interval from the per-window differences "
            "of log-likelihood (windows as units, so the covariance of the two is accounted for); Δp = p(correct next "
            f"token) − p_reference(correct next token), in percentage points; same top-1 with its {level}% Wilson "
            "interval."
        ),
        per_precision_table(
            analysis,
            frame,
            tuple(header for _, header, _ in present),
            lambda row: tuple(cell(row, name, formatter) for name, _, formatter in present),
            tuple(True for _ in present),
        ),
    ]


def _quality_gate(analysis: Analysis) -> list:
    """Which configurations keep the gate's fraction of the baseline's quality (analysis/gate.py)."""
    gate = analysis.gate
    if gate is None or gate.metric is None or column_or_none(analysis.table, "quality_recovery") is None:
        return []
    frame = per_precision(analysis, pl.col("quality_recovery").first(), pl.col("passes_quality_gate").first())

    def cells(row: dict[str, Any]) -> tuple[str, ...]:
        recovery = row["quality_recovery"]
        verdict = row["passes_quality_gate"]
        return fmt_pct(None if recovery is None else recovery * 100, 2), "–" if verdict is None else (
            "pass" if verdict else "FAIL"
        )

    described = gate.describe(analysis.settings.baseline)
    return [
        Paragraph(
            f"{described[0].upper()}{described[1:]} (`analysis.quality_gate={gate.fraction:g}`, "
            f"metric `{gate.metric}`; MLPerf's convention is 0.99, llm-compressor's 0.95). The performance table's "
            '"quality gate" column repeats the verdict beside the speed.'
        ),
        per_precision_table(analysis, frame, ("quality recovered", "quality gate"), cells, (True, False)),
    ]


def _points_interval(low: Any, high: Any) -> str:
    return "–" if low is None or high is None else f"{low:+.1f} to {high:+.1f}"
