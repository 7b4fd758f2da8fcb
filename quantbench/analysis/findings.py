"""Short findings written from the numbers: each sentence states a measured value and its test.

No finding goes beyond the table it comes from: "faster" is only said where the test says so at
the configured level, otherwise the sentence says there is no clear difference.
"""

from __future__ import annotations

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_fixed, fmt_interval, fmt_number, fmt_pct, fmt_ratio, fmt_usd, p_phrase
from quantbench.analysis.hardware_axis import HARDWARE_AXIS
from quantbench.analysis.serving_findings import serving_findings
from quantbench.analysis.sweep import column_or_none


def _where(analysis: Analysis, row: dict) -> str:
    """' (model m, hardware h)' when the sweep has more than one of those, else ''."""
    varying = [f"{column} {row[column]}" for column in analysis.varying_group_columns() if column in row]
    return f" ({', '.join(varying)})" if varying else ""


def _in_group_of(analysis: Analysis, frame: pl.DataFrame, row: dict) -> pl.DataFrame:
    """The rows of `frame` in the same model/hardware/... group as `row`."""
    for column in analysis.varying_group_columns():
        frame = frame.filter(pl.col(column) == row[column])
    return frame


def _top_row(frame: pl.DataFrame, column: str, largest: bool = False) -> dict:
    """The row with the smallest (or largest) value in `column`, rows without one left out."""
    return frame.filter(pl.col(column).is_not_null()).sort(column, descending=largest).row(0, named=True)


def findings(analysis: Analysis) -> list[str]:
    if analysis.table.height == 0 and analysis.serving is None:
        return ["No job finished with status ok, so there are no measurements to compare."]
    lines: list[str] = []
    if analysis.table.height == 0:  # a serving sweep
        return _job_status(analysis) + serving_findings(analysis.serving)
    lines += _job_status(analysis)
    lines += _speed(analysis)
    lines += _hardware(analysis)
    lines += _memory(analysis)
    lines += _cost(analysis)
    lines += _quality(analysis)
    lines += _roofline(analysis)
    lines += _iterations(analysis)
    lines += _mixed_software(analysis)
    return lines + serving_findings(analysis.serving)


def _job_status(analysis: Analysis) -> list[str]:
    summary = analysis.sweep.summary
    if "status" not in summary.columns:
        return []
    not_ok = summary.filter(pl.col("status") != "ok")
    if not_ok.height == 0:
        return []
    parts = [
        (
            f"{row.get('precision')} batch {row.get('batch')}: {row['status']} "
            f"({row.get('reason') or 'no reason recorded'})"
        )
        for row in not_ok.iter_rows(named=True)
    ]
    return [f"{not_ok.height} of {summary.height} jobs did not produce measurements: " + "; ".join(parts) + "."]


def _speed(analysis: Analysis) -> list[str]:
    lines = []
    baseline = analysis.settings.baseline
    level = f"{round(analysis.settings.confidence * 100)}% CI"
    comparisons = analysis.throughput
    if comparisons.height and "ratio" in comparisons.columns:
        tokens = comparisons.filter((pl.col("metric") == "tokens_per_s") & pl.col("ratio").is_not_null())
        batches_per_precision = tokens.filter(pl.col("batch").is_not_null()).group_by("precision").len()
        single_batch = {name for name, count in batches_per_precision.iter_rows() if count == 1}
        # One sentence per precision: its overall (geometric-mean) row, or its only batch size.
        overall = tokens.filter(pl.col("batch").is_null() | pl.col("precision").is_in(list(single_batch)))
        for row in overall.iter_rows(named=True):
            scope = (
                "at batch " + str(row["batch"]) if row["batch"] is not None else "over all batch sizes (geometric mean)"
            )
            if row["batch"] is None:
                per_batch = _in_group_of(
                    analysis,
                    tokens.filter((pl.col("precision") == row["precision"]) & pl.col("batch").is_not_null()),
                    row,
                )
                scope += (
                    " ["
                    + "; ".join(
                        f"batch {item['batch']}: {fmt_ratio(item['ratio'])}, {item['direction']}"
                        for item in per_batch.sort("batch").iter_rows(named=True)
                    )
                    + "]"
                )
            verdict = {
                "faster": f"faster than {baseline}",
                "slower": f"slower than {baseline}",
            }.get(row["direction"], f"not clearly different from {baseline} (p ≥ {analysis.settings.alpha})")
            lines.append(
                f"{row['precision']}{_where(analysis, row)} is {verdict} {scope}: "
                f"{fmt_ratio(row['ratio'])} the tokens/s "
                f"({level} {fmt_interval(row['ci_low'], row['ci_high'])}, {p_phrase(row['p_value'])})."
            )
    for batch in analysis.batches:
        at_batch = analysis.table.filter(pl.col("batch") == batch)
        if at_batch.height > 1:
            best = _top_row(at_batch, "tokens_per_s", largest=True)
            lines.append(
                f"Highest throughput at batch {batch}: {best['precision']}{_where(analysis, best)} with "
                f"{fmt_number(best['tokens_per_s'])} generated tokens/s and p95 latency "
                f"{fmt_fixed(best.get('latency_p95_ms'), 1)} ms."
            )
    return lines


def _hardware(analysis: Analysis) -> list[str]:
    """One sentence per machine against the baseline machine: each configuration's overall ratio
    (its geometric mean over batch sizes, or its one comparable batch size)."""
    comparisons = analysis.hardware
    if comparisons.height == 0 or "ratio" not in comparisons.columns:
        return []
    level = f"{round(analysis.settings.confidence * 100)}% CI"
    lines = []
    for machine in analysis.machines[1:]:
        rows = list(
            comparisons.filter((pl.col(HARDWARE_AXIS) == machine) & pl.col("ratio").is_not_null()).iter_rows(named=True)
        )
        overall = [row for row in rows if row["batch"] is None]
        combined = {_configuration(row) for row in overall}
        overall += [row for row in rows if row["batch"] is not None and _configuration(row) not in combined]
        parts = [
            f"{row['precision']}{_where(analysis, row)} {fmt_ratio(row['ratio'])} ({level} "
            f"{fmt_interval(row['ci_low'], row['ci_high'])}, "
            + ("geometric mean over batch sizes" if row["batch"] is None else f"batch {row['batch']}")
            + ")"
            for row in overall
        ]
        if parts:
            lines.append(
                f"Tokens/s on {machine} relative to {analysis.settings.baseline_hardware}, configuration by "
                "configuration: " + "; ".join(parts) + "."
            )
    return lines


def _configuration(row: dict) -> tuple:
    """What a hardware comparison row compares (model, precision, ...), without its batch size."""
    tested = {
        "batch",
        "metric",
        "baseline",
        "ratio",
        "ci_low",
        "ci_high",
        "p_value",
        "direction",
        "n_baseline",
        "n_candidate",
        "note",
    }
    return tuple(value for key, value in row.items() if key not in tested)


def _memory(analysis: Analysis) -> list[str]:
    table = analysis.table
    lines = []
    for column, label in (("weight_memory_gb", "weights"), ("peak_memory_gb", "peak memory")):
        if column_or_none(table, column) is None:
            continue
        smallest = _top_row(table, column)
        base = _in_group_of(
            analysis,
            table.filter((pl.col("precision") == analysis.settings.baseline) & (pl.col("batch") == smallest["batch"])),
            smallest,
        )
        comparison = ""
        if base.height and base[column][0] and smallest["precision"] != analysis.settings.baseline:
            reduction = (1 - smallest[column] / base[column][0]) * 100
            comparison = (
                f", {fmt_pct(reduction, 0)} less than {analysis.settings.baseline} ({fmt_number(base[column][0])} GB)"
            )
        where = "" if column == "weight_memory_gb" else f" at batch {smallest['batch']}"
        lines.append(
            f"Smallest {label}: {smallest['precision']}{_where(analysis, smallest)}{where}, "
            f"{fmt_number(smallest[column])} GB{comparison}."
        )
    return lines


def _cost(analysis: Analysis) -> list[str]:
    table = analysis.table
    if column_or_none(table, "cost_per_1k_tokens_usd") is None:
        return [
            "No price per hour is known for this hardware, so no cost is reported (set hardware.price_per_hour_usd)."
        ]
    cheapest = _top_row(table, "cost_per_1k_tokens_usd")
    savings = cheapest.get("savings_vs_baseline_pct")
    against = (
        f", {fmt_pct(abs(savings), 0)} {'less' if savings >= 0 else 'more'} than {analysis.settings.baseline} "
        "at the same batch size"
        if savings is not None and cheapest["precision"] != analysis.settings.baseline
        else ""
    )
    return [
        f"Lowest cost per 1k generated tokens: {cheapest['precision']}{_where(analysis, cheapest)} "
        f"at batch {cheapest['batch']}, {fmt_usd(cheapest['cost_per_1k_tokens_usd'])} "
        f"({fmt_number(cheapest['queries_per_dollar'])} queries per dollar "
        f"at {fmt_usd(cheapest['price_per_hour_usd'])}/h){against}."
    ]


def _quality(analysis: Analysis) -> list[str]:
    lines = []
    accuracy = analysis.accuracy
    if accuracy.height:
        for row in accuracy.iter_rows(named=True):
            verdict = "a significant difference" if row["significant"] else "no significant difference"
            lines.append(
                f"{row['precision']}{_where(analysis, row)} answers {fmt_pct(row['accuracy'] * 100)} of "
                f"{row['n_questions']} questions correctly vs {fmt_pct(row['baseline_accuracy'] * 100)} for "
                f"{row['baseline']} ({row['accuracy_difference_points']:+.1f} points; "
                f"McNemar {p_phrase(row['p_value'])}: {verdict})."
            )
    for metric in analysis.quality:
        if metric.column == "pubmedqa_acc" and accuracy.height:
            continue  # already said, with its paired test
        keys = [*analysis.varying_group_columns(), "precision"]
        values = (
            analysis.table.filter(pl.col(metric.column).is_not_null())
            .group_by(keys, maintain_order=True)
            .agg(pl.col(metric.column).first())
        )
        ranked = values.sort(metric.column, descending=metric.higher_is_better)
        if ranked.height < 2:
            continue
        best, worst = ranked.row(0, named=True), ranked.row(-1, named=True)
        lines.append(
            f"{metric.label}: best {best['precision']}{_where(analysis, best)} ({fmt_number(best[metric.column], 4)}), "
            f"worst {worst['precision']}{_where(analysis, worst)} ({fmt_number(worst[metric.column], 4)})."
        )
    return lines


def _roofline(analysis: Analysis) -> list[str]:
    table = analysis.table
    if column_or_none(table, "roofline_pct") is None:
        return []
    best = _top_row(table, "roofline_pct", largest=True)
    return [
        f"Decoding reaches at most {fmt_pct(best['roofline_pct'])} of the memory-bandwidth ceiling "
        f"({best['precision']}{_where(analysis, best)} at batch {best['batch']}: "
        f"{fmt_number(best['decode_tokens_per_s'])} of "
        f"{fmt_number(best['ceiling_tokens_per_s'])} tokens/s at {fmt_number(best['memory_bandwidth_gb_s'])} GB/s)."
    ]


def _iterations(analysis: Analysis) -> list[str]:
    if column_or_none(analysis.table, "n_iterations") is None:
        return []
    fewest = int(analysis.table["n_iterations"].min())
    if fewest >= analysis.settings.warn_below_iterations:
        return []
    return [
        f"Some configurations have only {fewest} timed iterations "
        f"(fewer than {analysis.settings.warn_below_iterations}): "
        "their intervals and p-values are rough; run with a larger bench.min_iterations."
    ]


# What a job records about the software that measured it; any of these differing inside one
# group of the sweep (same model, hardware, ...) means its rows were not measured together (a
# resumed sweep after an upgrade, summaries of separate runs merged): their speed comparisons
# assume the same conditions.
_SOFTWARE_FIELDS = ("git_commit", "python", "torch_threads")


def _software_of(result: dict) -> dict[str, str]:
    environment = result.get("environment") or {}
    fields = {name: str(environment.get(name)) for name in _SOFTWARE_FIELDS if environment.get(name) is not None}
    if "git_commit" in fields:  # 10 hex digits name a commit; keep the -dirty mark
        commit, dirty, _ = fields["git_commit"].partition("-dirty")
        fields["git_commit"] = commit[:10] + ("-dirty" if dirty else "")
    versions = environment.get("versions") or {}
    return fields | {name: str(version) for name, version in versions.items() if version}


def _mixed_software(analysis: Analysis) -> list[str]:
    ok = analysis.sweep.ok
    if "job_dir" not in ok.columns:
        return []
    by_group: dict[tuple, dict[str, dict[str, list[str]]]] = {}
    first_row_of: dict[tuple, dict] = {}  # names the group in the sentence, as every finding does
    for row in ok.iter_rows(named=True):
        result = analysis.sweep.result(row["job_dir"])
        if result is None:
            continue
        group = tuple(row.get(column) for column in analysis.varying_group_columns())
        first_row_of.setdefault(group, row)
        label = f"{row.get('precision')}@{row.get('batch')}"
        for name, value in _software_of(result).items():
            by_group.setdefault(group, {}).setdefault(name, {}).setdefault(value, []).append(label)
    lines = []
    for group, fields in by_group.items():
        differing = {name: values for name, values in fields.items() if len(values) > 1}
        if not differing:
            continue
        details = "; ".join(
            f"{name}: " + ", ".join(f"{value} ({', '.join(labels)})" for value, labels in values.items())
            for name, values in differing.items()
        )
        lines.append(
            f"Not every job{_where(analysis, first_row_of[group])} was measured with the same software ({details}): "
            "a resumed or merged sweep; compare speeds across them only if the machine's conditions were the same."
        )
    return lines
