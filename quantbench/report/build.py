"""The content of a sweep report: environment, tables, statistics, cost, quality, figures, findings."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.findings import findings
from quantbench.analysis.hardware import HARDWARE_AXIS
from quantbench.analysis.formatting import (
    fmt_fixed,
    fmt_interval,
    fmt_number,
    fmt_p,
    fmt_pct,
    fmt_ratio,
    fmt_usd,
)
from quantbench.analysis.plots import Figure
from quantbench.analysis.sweep import column_or_none
from quantbench.report.document import Bullets, Document, Heading, Image, Paragraph, Table
from quantbench.report.energy import ENERGY_METHOD, ENERGY_TABLE_COLUMNS, energy_blocks, telemetry_blocks
from quantbench.report.serving import SERVING_METHOD, serving_blocks
from quantbench.report.tails import flag_header, footnote, unresolved_columns

# (column, header, formatter) for the per-configuration tables.
Column = tuple[str, str, Callable[[Any], str]]

PERFORMANCE_COLUMNS: tuple[Column, ...] = (
    ("tokens_per_s", "tokens/s", fmt_number),
    ("qps", "QPS", fmt_number),
    ("passes_quality_gate", "quality gate", lambda v: "pass" if v else "FAIL"),
    ("latency_p50_ms", "p50 ms", lambda v: fmt_fixed(v, 1)),
    ("latency_p95_ms", "p95 ms", lambda v: fmt_fixed(v, 1)),
    ("latency_p99_ms", "p99 ms", lambda v: fmt_fixed(v, 1)),
    ("ttft_p50_ms", "TTFT p50 ms", lambda v: fmt_fixed(v, 1)),
    ("tpot_p50_ms", "TPOT p50 ms", lambda v: fmt_fixed(v, 2)),
    ("peak_memory_gb", "peak GB", fmt_number),
    ("weight_memory_gb", "weights GB", fmt_number),
    # bytes stored per linear-layer weight × 8: one definition for every method (measure/weight_bits.py)
    ("bits_per_weight", "bits/weight", lambda v: fmt_fixed(v, 2)),
    ("load_s", "load s", lambda v: fmt_fixed(v, 1)),
    ("n_iterations", "n", fmt_number),
)
COST_COLUMNS: tuple[Column, ...] = (
    ("price_per_hour_usd", "$/hour", fmt_usd),
    ("cost_per_1k_tokens_usd", "$ per 1k tokens", fmt_usd),
    ("cost_per_query_usd", "$ per query", fmt_usd),
    ("queries_per_dollar", "queries per $", fmt_number),
    ("savings_vs_baseline_pct", "savings vs baseline", lambda v: fmt_pct(v, 1, signed=True)),
)
ROOFLINE_COLUMNS: tuple[Column, ...] = (
    ("bytes_per_decode_step_mb", "MB read per decode step", lambda v: fmt_fixed(v, 2)),
    ("ceiling_tokens_per_s", "ceiling tokens/s", fmt_number),
    ("decode_tokens_per_s", "measured decode tokens/s", fmt_number),
    ("roofline_pct", "% of ceiling", fmt_pct),
    ("roofline_note", "note", str),
)


def _precision_rank(analysis: Analysis) -> pl.Expr:
    """Each row's precision as its place in the report's order (the baseline first, unknown ones last)."""
    rank = {precision: index for index, precision in enumerate(analysis.precisions)}
    return pl.col("precision").replace_strict(rank, default=len(rank))


def _config_table(analysis: Analysis, frame: pl.DataFrame, columns: tuple[Column, ...]) -> tuple[Table | None, str | None]:
    """The per-configuration table of `columns`, and the footnote of its tail percentiles that too few
    samples resolve (headed `p99*`; None when none is)."""
    columns = tuple(column for column in columns if column_or_none(frame, column[0]) is not None)
    if not columns or frame.height == 0:
        return None, None
    varying = analysis.varying_group_columns()
    frame = frame.with_columns(_precision_rank(analysis).alias("_rank"))
    frame = frame.sort([*varying, "batch", "_rank"])
    flagged = unresolved_columns(frame, [column for column, _, _ in columns])  # p99 of < 100 samples: p99*
    headers = (*(column.capitalize() for column in varying), "Batch", "Precision",
               *(flag_header(header, column, flagged) for column, header, _ in columns))
    rows = tuple(
        (
            *(str(row[column]) for column in varying),
            str(row["batch"]),
            row["precision"],
            *(formatter(row[column]) if row[column] is not None else "–" for column, _, formatter in columns),
        )
        for row in frame.iter_rows(named=True)
    )
    numeric = (*(False for _ in varying), True, False, *(column != "roofline_note" for column, _, _ in columns))
    return Table(headers, rows, numeric), footnote(flagged)


def _table_notes(analysis: Analysis, title: str, table: Table | None, tails: str | None) -> list[Paragraph]:
    """What a reader must know under a table: its flagged tail percentiles (`tails`, _config_table's
    footnote), and which interval it shows."""
    if table is None:
        return []
    notes = [Paragraph(tails)] if tails else []
    if title.startswith("Statistics:") and analysis.interval_note:
        notes.append(Paragraph(analysis.interval_note))
    return notes


def _statistics_table(analysis: Analysis, metric: str) -> Table | None:
    comparisons = analysis.throughput
    if comparisons.height == 0 or "metric" not in comparisons.columns:
        return None
    return _ratio_table(analysis, comparisons.filter(pl.col("metric") == metric), analysis.varying_group_columns(),
                        ("precision", "Precision"), analysis.settings.baseline)


def _ratio_table(analysis: Analysis, frame: pl.DataFrame, varying: list[str], axis: tuple[str, str], baseline: str) -> Table | None:
    """Ratios against `baseline` along `axis` (column, header): one row per batch and value, and
    the geometric means over batch sizes."""
    if frame.height == 0:
        return None
    column, header = axis
    order = {machine: index for index, machine in enumerate(analysis.machines)}
    frame = frame.with_columns(
        _precision_rank(analysis).alias("_rank"),
        pl.col(column).replace_strict(order, default=len(order)).alias("_order") if column != "precision" else pl.lit(0).alias("_order"),
    )
    keys = ["_rank" if name == "precision" else name for name in varying]  # precisions in display order
    frame = frame.sort([*keys, "batch", "_rank", "_order"], nulls_last=True)
    level = round(analysis.settings.confidence * 100)
    headers = (*(name.capitalize() for name in varying), "Batch", header, "Direction",
               f"× vs {baseline}", f"{level}% CI", "p", "n", "note")
    rows = tuple(
        (
            *(str(row[name]) for name in varying),
            "all (geo. mean)" if row["batch"] is None else str(row["batch"]),
            row[column],
            row["direction"],
            fmt_ratio(row["ratio"]),
            fmt_interval(row["ci_low"], row["ci_high"]),
            fmt_p(row["p_value"]),
            "–" if row["n_candidate"] is None else f"{row['n_candidate']} vs {row['n_baseline']}",
            row["note"] or "",
        )
        for row in frame.iter_rows(named=True)
    )
    numeric = (*(False for _ in varying), True, False, False, True, True, True, True, False)
    return Table(headers, rows, numeric)


def _hardware(analysis: Analysis) -> list:
    """Several machines: each configuration's throughput on each, and each machine's ratio against
    the baseline machine with its interval, like with like."""
    machines = analysis.machines
    varying = [column for column in analysis.varying_group_columns() if column not in ("hardware", "device")]
    engine = ", engine" if column_or_none(analysis.table, "engine") is not None else ""
    blocks: list = [Paragraph(
        f"The same configuration (model, precision, batch size{engine}, dataset and generation length) on each "
        f"machine; ratios of generated tokens/s against `{analysis.settings.baseline_hardware}` "
        "(choose with --baseline-hardware)."
    )]
    wide = (
        analysis.table.filter(pl.col("tokens_per_s").is_not_null())
        .group_by([*varying, "precision", "batch", HARDWARE_AXIS], maintain_order=True)
        .agg(pl.col("tokens_per_s").first())
        .pivot(on=HARDWARE_AXIS, index=[*varying, "precision", "batch"], values="tokens_per_s")
    )
    wide = wide.sort([*varying, "batch", _precision_rank(analysis)])
    blocks.append(Table(
        (*(name.capitalize() for name in varying), "Batch", "Precision", *(f"{machine} tokens/s" for machine in machines)),
        tuple(
            (*(str(row[name]) for name in varying), str(row["batch"]), row["precision"],
             *(fmt_number(row.get(machine)) for machine in machines))
            for row in wide.iter_rows(named=True)
        ),
        (*(False for _ in varying), True, False, *(True for _ in machines)),
    ))
    ratios = _ratio_table(analysis, analysis.hardware, [*varying, "precision"], (HARDWARE_AXIS, "Hardware"),
                          analysis.settings.baseline_hardware) if analysis.hardware.height else None
    blocks.append(ratios if ratios is not None else Paragraph("No configuration ran on more than one machine."))
    return blocks


def _environment(analysis: Analysis) -> Table:
    result = analysis.sweep.first_result() or {}
    environment = result.get("environment") or {}
    config = result.get("config") or {}
    versions = environment.get("versions") or {}
    bench = config.get("bench") or {}
    model = config.get("model") or {}
    table = analysis.table
    first = table.row(0, named=True) if table.height else {}
    several = len(analysis.machines) > 1
    entries = [
        ("sweep directory", ", ".join(str(directory) for directory in analysis.sweep.directories)),
        ("quantbench versions", _versions(analysis)),
        ("model", f"{model.get('name', first.get('model', '–'))} ({model.get('source', '?')} source)"),
        ("model note", model.get("note") or ""),
        ("dataset", str(first.get("dataset", "–"))),
    ]
    if several:
        entries += [(f"hardware {machine}", _machine(row)) for machine, row in _first_row_per_machine(analysis)]
    else:
        entries += [
            ("hardware config", str(first.get("hardware", "–"))),
            ("device", f"{environment.get('device_name') or first.get('device', '–')} ({environment.get('device_type', '?')})"),
            ("device memory", f"{environment['device_memory_gb']} GB" if environment.get("device_memory_gb") else ""),
            ("CPU", f"{environment.get('cpu', '–')}, {environment.get('cpu_count', '?')} logical cores, "
                    f"{environment.get('torch_threads', '?')} torch threads"),
            *_facts(first),
        ]
    entries += [
        ("bench", ", ".join(f"{key}={value}" for key, value in bench.items()) if bench else ""),
        ("python", str(environment.get("python", "–"))),
        ("packages", ", ".join(f"{name} {version}" for name, version in versions.items() if version)),
        ("CUDA", "" if several else str(environment.get("cuda") or "none")),
        ("git commit", str(environment.get("git_commit") or "unknown")),
        ("host", "" if several else str(environment.get("hostname") or "")),
    ]
    rows = tuple((key, value) for key, value in entries if value)
    return Table(("", "value"), rows)


def _facts(row: dict[str, Any]) -> list[tuple[str, str]]:
    """Price, bandwidth and peak compute of a machine, each with the source its job recorded."""
    peak = row.get("peak_fp16_tflops")
    return [
        ("price per hour", f"{fmt_usd(row.get('price_per_hour_usd'))} — {row.get('price_source', '')}"),
        ("memory bandwidth", f"{fmt_number(row.get('memory_bandwidth_gb_s'))} GB/s — {row.get('bandwidth_source', '')}"),
        ("peak FP16 compute", f"{fmt_number(peak)} TFLOPS — {row.get('peak_compute_source', '')}" if peak is not None else ""),
    ]


def _machine(row: dict[str, Any]) -> str:
    """One machine of several, in one cell: its device, product and facts."""
    product = row.get("hardware_product")
    facts = "; ".join(f"{name} {value}" for name, value in _facts(row) if value)
    return f"{row.get('device', '–')}" + (f" ({product})" if product else "") + f"; {facts}"


def _first_row_per_machine(analysis: Analysis) -> list[tuple[str, dict[str, Any]]]:
    table = analysis.table
    return [(machine, table.filter(pl.col(HARDWARE_AXIS) == machine).row(0, named=True)) for machine in analysis.machines]


def _versions(analysis: Analysis) -> str:
    """Which quantbench measured which jobs: one version, or each with the machines it ran on."""
    summary = analysis.sweep.summary
    if "quantbench_version" not in summary.columns:
        return ""
    found: dict[str, list[str]] = {}
    for row in summary.iter_rows(named=True):
        if row.get("quantbench_version") is None and row.get("status") != "ok":
            continue  # an unreadable or unfinished job: the jobs table says why
        version = row.get("quantbench_version") or "unknown (not recorded)"
        where = str(row.get("hardware") or "?")
        if where not in found.setdefault(version, []):
            found[version].append(where)
    if len(found) == 1:
        return next(iter(found))
    return "; ".join(f"{version} ({', '.join(machines)})" for version, machines in found.items())


def _jobs(analysis: Analysis) -> list:
    summary = analysis.sweep.summary
    counts = summary.group_by("status").len().sort("status") if "status" in summary.columns else None
    text = ", ".join(f"{count} {status}" for status, count in counts.iter_rows()) if counts is not None else ""
    repeats = summary.get_column("n_repeats").max() if "n_repeats" in summary.columns else None
    if repeats is not None and repeats > 1:  # one summary row per configuration (bench.repeats)
        blocks: list = [Paragraph(f"{summary.height} configurations, each run up to {repeats} times (bench.repeats; "
                                  f"ok repeats per row in `n_repeats`): {text}.")]
    else:
        blocks = [Paragraph(f"{summary.height} jobs: {text}.")]
    if counts is not None:
        not_ok = summary.filter(pl.col("status") != "ok")
        if not_ok.height:
            rows = tuple(
                (str(row.get("batch")), str(row.get("precision")), row["status"], row.get("reason") or "")
                for row in not_ok.iter_rows(named=True)
            )
            blocks.append(Table(("Batch", "Precision", "Status", "Reason"), rows, (True, False, False, False)))
    if summary.schema.get("budget_cut") == pl.Boolean:  # absent from sweeps made before bench.max_seconds
        cut = summary.filter(pl.col("budget_cut").fill_null(False))
        if cut.height:
            blocks.append(Paragraph(
                f"{cut.height} job(s) cut by their time budget (`bench.max_seconds`, `bench.warmup_max_seconds`): "
                "fewer iterations than asked, so wider intervals."
            ))
            rows = tuple((str(row.get("batch")), str(row.get("precision")), row.get("budget_cut_reason") or "") for row in cut.iter_rows(named=True))
            blocks.append(Table(("Batch", "Precision", "Cut"), rows, (True, False, False)))
    return blocks


def _quality_columns(analysis: Analysis) -> list[str]:
    """Each quality metric, and its interval columns where the quality run wrote them."""
    columns = []
    for metric in analysis.quality:
        columns.append(metric.column)
        columns += [f"{metric.column}{end}" for end in ("_ci_low", "_ci_high") if f"{metric.column}{end}" in analysis.table.columns]
    return columns


def _with_interval(row: dict[str, Any], column: str) -> str:
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    value = fmt_number(row[column], 4)
    return value if low is None or high is None else f"{value} [{fmt_number(low, 4)}–{fmt_number(high, 4)}]"


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


def _per_precision(analysis: Analysis, *aggregations: pl.Expr) -> pl.DataFrame:
    """One row per precision (within each varying group), in the report's precision order, holding
    `aggregations` over its rows (batch sizes, ...)."""
    frame = analysis.table.group_by([*analysis.varying_group_columns(), "precision"], maintain_order=True).agg(*aggregations)
    return frame.sort(_precision_rank(analysis))


def _per_precision_table(
    analysis: Analysis, frame: pl.DataFrame, headers: tuple[str, ...], cells: Callable[[dict[str, Any]], tuple[str, ...]],
    numeric: tuple[bool, ...],
) -> Table:
    """A table of `_per_precision` rows: the varying group columns and the precision, then `headers`
    with each row's `cells`."""
    varying = analysis.varying_group_columns()
    return Table(
        (*(name.capitalize() for name in varying), "Precision", *headers),
        tuple((*(str(row[name]) for name in varying), row["precision"], *cells(row)) for row in frame.iter_rows(named=True)),
        (*(False for _ in varying), False, *numeric),
    )


def _paired_quality(analysis: Analysis) -> list:
    """Each precision against the KL reference on the same tokens, as llama.cpp's KL-divergence report."""
    table = analysis.table
    if column_or_none(table, "ppl_ratio") is None:
        return []
    intervals = {"ppl_ratio": ("ppl_ratio_low", "ppl_ratio_high"), "top1_agree": ("top1_agree_ci_low", "top1_agree_ci_high")}
    present = [column for column in PAIRED_COLUMNS if column[0] in table.columns]
    wanted = {column for name, _, _ in present for column in (name, *intervals.get(name, ())) if column in table.columns}
    frame = _per_precision(
        analysis,
        *(pl.col(column).drop_nulls().first() for column in sorted(wanted)),
        pl.col("kld_reference").drop_nulls().first() if "kld_reference" in table.columns else pl.lit(None).alias("kld_reference"),
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
            f"statistics): PPL ratio = PPL / PPL_reference with its {level}% interval from the per-window differences of "
            "log-likelihood (windows as units, so the covariance of the two is accounted for); Δp = p(correct next token) "
            f"− p_reference(correct next token), in percentage points; same top-1 with its {level}% Wilson interval."
        ),
        _per_precision_table(
            analysis, frame, tuple(header for _, header, _ in present),
            lambda row: tuple(cell(row, name, formatter) for name, _, formatter in present), tuple(True for _ in present),
        ),
    ]


def _quality_gate(analysis: Analysis) -> list:
    """Which configurations keep the gate's fraction of the baseline's quality (analysis/gate.py)."""
    gate = analysis.gate
    if gate is None or gate.metric is None or column_or_none(analysis.table, "quality_recovery") is None:
        return []
    frame = _per_precision(analysis, pl.col("quality_recovery").first(), pl.col("passes_quality_gate").first())

    def cells(row: dict[str, Any]) -> tuple[str, ...]:
        recovery = row["quality_recovery"]
        verdict = row["passes_quality_gate"]
        return fmt_pct(None if recovery is None else recovery * 100, 2), "–" if verdict is None else ("pass" if verdict else "FAIL")

    described = gate.describe(analysis.settings.baseline)
    return [
        Paragraph(
            f"{described[0].upper()}{described[1:]} (`analysis.quality_gate={gate.fraction:g}`, "
            f"metric `{gate.metric}`; MLPerf's convention is 0.99, llm-compressor's 0.95). The performance table's "
            "\"quality gate\" column repeats the verdict beside the speed."
        ),
        _per_precision_table(analysis, frame, ("quality recovered", "quality gate"), cells, (True, False)),
    ]


def _points_interval(low: Any, high: Any) -> str:
    return "–" if low is None or high is None else f"{low:+.1f} to {high:+.1f}"


def _quality(analysis: Analysis) -> list:
    blocks: list = []
    if analysis.quality:
        frame = _per_precision(
            analysis,
            *(pl.col(column).drop_nulls().first() for column in _quality_columns(analysis)),
            pl.col("weight_memory_gb").first() if "weight_memory_gb" in analysis.table.columns else pl.lit(None).alias("weight_memory_gb"),
            pl.col("bits_per_weight").first() if "bits_per_weight" in analysis.table.columns else pl.lit(None).alias("bits_per_weight"),
        )
        blocks.append(_per_precision_table(
            analysis, frame, (*(metric.label for metric in analysis.quality), "weights GB", "bits/weight"),
            lambda row: (*(_with_interval(row, metric.column) for metric in analysis.quality), fmt_number(row["weight_memory_gb"]),
                         "–" if row["bits_per_weight"] is None else fmt_fixed(row["bits_per_weight"], 2)),
            (*(True for _ in analysis.quality), True, True),
        ))
        note = (analysis.sweep.first_result() or {}).get("config", {}).get("model", {}).get("note")
        if note:
            blocks.append(Paragraph(f"Model note: {note}."))
        blocks += _paired_quality(analysis)
        blocks += _quality_gate(analysis)
    else:
        blocks.append(Paragraph("No quality metrics in this sweep (run with quality on to measure accuracy, perplexity and KL divergence)."))
    accuracy = analysis.accuracy
    if accuracy.height:
        blocks.append(Paragraph(
            f"Paired accuracy against {analysis.settings.baseline}, question by question (McNemar's exact test on the "
            "questions that exactly one of the two answers correctly; the interval of Δ is Newcombe's paired score "
            f"interval at {round(analysis.settings.confidence * 100)}%; agreement: the share of questions both answer alike):"
        ))
        rows = tuple(
            (row["precision"], str(row["n_questions"]), fmt_pct(row["baseline_accuracy"] * 100),
             fmt_pct(row["accuracy"] * 100), f"{row['accuracy_difference_points']:+.1f}",
             _points_interval(row.get("accuracy_difference_ci_low_points"), row.get("accuracy_difference_ci_high_points")),
             fmt_pct(None if row.get("answer_agreement") is None else row["answer_agreement"] * 100),
             f"{row['only_baseline_correct']} / {row['only_candidate_correct']}", fmt_p(row["p_value"]),
             "yes" if row["significant"] else "no")
            for row in accuracy.iter_rows(named=True)
        )
        blocks.append(Table(
            ("Precision", "questions", f"{analysis.settings.baseline} accuracy", "accuracy", "Δ points", "Δ interval",
             "agreement", f"only {analysis.settings.baseline} / only this correct", "p", f"significant at {analysis.settings.alpha}"),
            rows, (False, True, True, True, True, True, True, True, True, False),
        ))
    return blocks


def _figures(figures: list[Figure], report_dir: Path) -> list:
    blocks: list = []
    skipped = []
    for figure in figures:
        if figure.path is None:
            skipped.append(f"{figure.title}: {figure.note}")
            continue
        link = Path(os.path.relpath(figure.path, report_dir)).as_posix()
        blocks.append(Heading(3, figure.title))
        blocks.append(Image(link, figure.title, figure.note))
    if skipped:
        blocks.append(Paragraph("Figures not drawn:"))
        blocks.append(Bullets(tuple(skipped)))
    return blocks


def _method(analysis: Analysis) -> Bullets:
    settings = analysis.settings
    level = round(settings.confidence * 100)
    return Bullets((
        "Throughput of a configuration = total work / total time of its timed iterations (after warm-up); "
        "tokens/s counts generated tokens only, QPS counts samples. Latency percentiles are over per-iteration "
        "latency of one generate() call over the whole batch.",
        f"Ratios are against `{settings.baseline}` at the same batch size. {level}% intervals: bootstrap (BCa, "
        f"{settings.bootstrap_resamples} resamples, seed {settings.seed}) over iterations, each configuration resampled independently. "
        "p: Welch's t-test on log per-iteration throughput, two-sided.",
        f"Direction says faster/slower only where p < {settings.alpha}. Across batch sizes: geometric mean of the "
        "per-batch ratios, interval from a joint bootstrap over all batches, p from the same Welch test applied to "
        "the mean of the per-batch log differences (Welch-Satterthwaite degrees of freedom): a test of the "
        "geometric mean itself, in which faster at one batch and slower at another cancel.",
        "Cost assumes the machine is busy back to back at the measured throughput: $ per 1k tokens = price per hour / "
        "3600 / tokens/s × 1000; savings compare $ per 1k tokens with the baseline at the same batch size.",
        "Roofline: one decode step reads the stored weights once plus batch × KV bytes per token × average context "
        "(prompt + half the generated tokens); ceiling = batch × bandwidth / bytes per step; measured = batch / TPOT. "
        "KV bytes per token, bandwidth and price are what each job recorded on the machine that ran it.",
        "Across machines: each configuration against the same configuration (model, precision, batch size, dataset, "
        "generation length, engine) on the baseline hardware; same intervals and tests as across precisions.",
        "GB = 10^9 bytes. Peak memory is allocated accelerator memory on a GPU, peak resident host memory on a CPU.",
        *((f"Quality gate: a configuration passes when its quality recovery (PubMedQA accuracy / the baseline's where "
           f"measured, else PPL_baseline / PPL; here `{analysis.gate.metric}`) is at least {analysis.gate.fraction:g}; "
           "without the metric it has no verdict (docs/metrics.md).",)
          if analysis.gate is not None and analysis.gate.metric is not None else ()),
        *((SERVING_METHOD,) if analysis.serving is not None else ()),
        ENERGY_METHOD,
    ))


def build_document(analysis: Analysis, figures: list[Figure], report_dir: Path) -> Document:
    names = " + ".join(directory.name for directory in analysis.sweep.directories)
    document = Document(f"quantbench report: {names}")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sweeps = ", ".join(f"`{directory}`" for directory in analysis.sweep.directories)
    baseline_hardware = f" Baseline hardware: `{analysis.settings.baseline_hardware}`." if len(analysis.machines) > 1 else ""
    document.add(Paragraph(
        f"{'Sweeps' if analysis.sweep.merged else 'Sweep'} {sweeps}, analysed {generated}. "
        f"Baseline precision: `{analysis.settings.baseline}`.{baseline_hardware}"
    ))
    if analysis.notes:
        document.add(Bullets(tuple(analysis.notes)))
    document.add(Heading(2, "Findings"), Bullets(tuple(findings(analysis))))
    document.add(Heading(2, "Environment"), _environment(analysis))
    document.add(Heading(2, "Jobs"), *_jobs(analysis))
    if len(analysis.machines) > 1:
        document.add(Heading(2, f"Hardware: tokens/s vs {analysis.settings.baseline_hardware}"), *_hardware(analysis))
    if analysis.serving is not None:
        document.add(Heading(2, "Serving"), *serving_blocks(analysis))
    offline = analysis.table.height > 0 or analysis.serving is None  # a serving-only sweep has no offline section
    sections = (  # (title, (table, footnote of its flagged tail percentiles))
        ("Performance", _config_table(analysis, analysis.table, PERFORMANCE_COLUMNS)),
        (f"Statistics: tokens/s vs {analysis.settings.baseline}", (_statistics_table(analysis, "tokens_per_s"), None)),
        (f"Statistics: QPS vs {analysis.settings.baseline}", (_statistics_table(analysis, "qps"), None)),
        ("Cost", _config_table(analysis, analysis.table, COST_COLUMNS)),
        ("Roofline (decode vs memory-bandwidth ceiling)", _config_table(analysis, analysis.table, ROOFLINE_COLUMNS)),
    )
    for title, (table, tails) in sections if offline else ():
        document.add(Heading(2, title), table if table is not None else Paragraph("Not available for this sweep."))
        document.add(*_table_notes(analysis, title, table, tails))
    if offline:
        document.add(Heading(2, "Quality"), *_quality(analysis))
        energy_table, _ = _config_table(analysis, analysis.table, ENERGY_TABLE_COLUMNS)  # no percentile columns
        document.add(Heading(2, "Energy"), *energy_blocks(analysis, energy_table, _statistics_table(analysis, "tokens_per_kwh")))
    document.add(Heading(2, "Telemetry"), *telemetry_blocks(analysis))
    document.add(Heading(2, "Figures"), *_figures(figures, report_dir))
    document.add(Heading(2, "How these numbers were computed"), _method(analysis))
    return document
