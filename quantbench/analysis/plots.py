"""Figures of an analysed sweep, as PNG files (matplotlib, Agg: no display needed).

Each figure is made only from columns that hold values; one that cannot be drawn is returned as
skipped with the reason, so a report always says why a figure is missing instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display on servers and in tests

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.hardware_axis import HARDWARE_AXIS
from quantbench.analysis.sweep import column_or_none
from quantbench.analysis.telemetry_plots import NoTelemetry, draw_telemetry

# Past this many bars on one axes a number above each is unreadable (and drawing them dominated the
# report's time at hundreds of configurations): the tables carry the numbers.
MAX_LABELLED_BARS = 40
# Past this many drawn artists on one axes, a legend is placed in a fixed corner: matplotlib's "best"
# place tests every candidate position against every data point (seconds per figure at 400 bars).
MAX_ARTISTS_FOR_BEST_LEGEND = 60


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    path: Path | None  # None when skipped
    note: str = ""  # why it was skipped, or how to read it


def labels(analysis: Analysis, frame: pl.DataFrame) -> list[str]:
    """A configuration's name in plots: the precision, prefixed by whatever else varies."""
    varying = analysis.varying_group_columns()
    return [
        " ".join([*(str(row[column]) for column in varying), row["precision"]]) for row in frame.iter_rows(named=True)
    ]


def _ordered(analysis: Analysis, frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in display order: group, then the precision order (baseline first), then batch."""
    rank = {precision: index for index, precision in enumerate(analysis.precisions)}
    frame = frame.with_columns(pl.col("precision").replace_strict(rank, default=len(rank)).alias("_rank"))
    return frame.sort([*analysis.varying_group_columns(), "_rank", "batch"], nulls_last=True).drop("_rank")


def _grouped_bars(
    ax,
    analysis: Analysis,
    frame: pl.DataFrame,
    value: str,
    low: str | None = None,
    high: str | None = None,
    annotate: str = "{:.3g}",
) -> None:
    """Bars of `value`: one group per configuration, one bar per batch size."""
    frame = _ordered(analysis, frame.filter(pl.col(value).is_not_null()))
    categories = list(dict.fromkeys(labels(analysis, frame)))
    batches = sorted(frame.get_column("batch").unique().to_list(), key=lambda b: (b is None, b))
    width = 0.8 / max(1, len(batches))
    frame = frame.with_columns(pl.Series("_label", labels(analysis, frame)))
    for index, batch in enumerate(batches):
        at_batch = frame.filter(pl.col("batch").is_null() if batch is None else pl.col("batch") == batch)
        positions, heights, errors = [], [], [[], []]
        for row in at_batch.iter_rows(named=True):
            positions.append(categories.index(row["_label"]) + (index - (len(batches) - 1) / 2) * width)
            heights.append(row[value])
            if low and high:
                errors[0].append(max(0.0, row[value] - row[low]) if row[low] is not None else 0.0)
                errors[1].append(max(0.0, row[high] - row[value]) if row[high] is not None else 0.0)
        bars = ax.bar(
            positions,
            heights,
            width,
            label="all batches (geo. mean)" if batch is None else f"batch {batch}",
            yerr=errors if low and high else None,
            capsize=3,
        )
        if len(frame) <= MAX_LABELLED_BARS:
            ax.bar_label(bars, labels=[annotate.format(height) for height in heights], fontsize=7, padding=2)
    ax.set_xticks(
        range(len(categories)),
        categories,
        rotation=30 if len(categories) > 4 else 0,
        ha="right" if len(categories) > 4 else "center",
    )
    ax.set_xlabel("precision")
    ax.grid(axis="y", alpha=0.3)
    if len(batches) > 1 or batches == [None]:
        ax.legend(fontsize=8)


def save(fig, path: Path) -> Path:
    for ax in fig.axes:
        legend = ax.get_legend()
        crowded = len(ax.patches) + len(ax.lines) + len(ax.collections) > MAX_ARTISTS_FOR_BEST_LEGEND
        if legend is not None and crowded and legend._loc in (0, "best"):  # 0: matplotlib's code for "best"
            legend.set_loc("upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bar_figure(value: str, ylabel: str, title: str, annotate: str = "{:.3g}", reference: float | None = None):
    def draw(analysis: Analysis, path: Path) -> str:
        frame = analysis.table
        fig, ax = plt.subplots(figsize=(8, 4.5))
        _grouped_bars(ax, analysis, frame, value, annotate=annotate)
        if reference is not None:
            ax.axhline(reference, color="grey", linewidth=1, linestyle="--")
        ax.set_ylabel(ylabel.format(baseline=analysis.settings.baseline))
        ax.set_title(title.format(baseline=analysis.settings.baseline))
        save(fig, path)
        return ""

    draw.required = (value,)
    return draw


def _throughput(analysis: Analysis, path: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    _grouped_bars(axes[0], analysis, analysis.table, "tokens_per_s")
    axes[0].set_ylabel("generated tokens / s")
    axes[0].set_title("Generated tokens per second")
    _grouped_bars(axes[1], analysis, analysis.table, "qps")
    axes[1].set_ylabel("samples / s (QPS)")
    axes[1].set_title("Queries (samples) per second")
    fig.suptitle("Throughput by precision and batch size (higher is better)")
    save(fig, path)
    return ""


_throughput.required = ("tokens_per_s", "qps")


def _memory(analysis: Analysis, path: Path) -> str:
    panels = [
        (column, label)
        for column, label in (("peak_memory_gb", "peak memory (GB)"), ("weight_memory_gb", "weight memory (GB)"))
        if column_or_none(analysis.table, column) is not None
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels):
        _grouped_bars(ax, analysis, analysis.table, column, annotate="{:.2f}")
        ax.set_ylabel(label)
        ax.set_title(label[0].upper() + label[1:])
    fig.suptitle("Memory by precision (lower is better; GB = 1e9 bytes)")
    save(fig, path)
    return "peak: accelerator allocated memory on a GPU, resident host memory (RSS) on a CPU"


_memory.required = ("peak_memory_gb",)


def _latency(analysis: Analysis, path: Path) -> str:
    batches = analysis.batches
    fig, axes = plt.subplots(1, len(batches), figsize=(max(6, 4.5 * len(batches)), 4.5), squeeze=False)
    for ax, batch in zip(axes[0], batches):
        frame = _ordered(analysis, analysis.table.filter(pl.col("batch") == batch))
        names = labels(analysis, frame)
        positions = np.arange(len(names))
        for offset, (column, label) in zip((-0.2, 0.2), (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"))):
            bars = ax.bar(positions + offset, frame.get_column(column).to_list(), 0.4, label=label)
            if 2 * len(positions) <= MAX_LABELLED_BARS:
                ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
        ax.set_xticks(positions, names, rotation=30 if len(names) > 4 else 0)
        ax.set_title(f"batch {batch}")
        ax.set_xlabel("precision")
        ax.set_ylabel("latency per batch (ms)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Latency p50 / p95 by precision (one generate() call over the batch; lower is better)")
    save(fig, path)
    return ""


_latency.required = ("latency_p50_ms", "latency_p95_ms")


def _latency_vs_batch(analysis: Analysis, path: Path) -> str:
    if len(analysis.batches) < 2:
        raise Skip("needs at least two batch sizes")
    frame = _ordered(analysis, analysis.table)
    frame = frame.with_columns(pl.Series("_label", labels(analysis, frame)))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label in dict.fromkeys(frame.get_column("_label").to_list()):
        rows = frame.filter(pl.col("_label") == label).sort("batch")
        (line,) = ax.plot(rows["batch"], rows["latency_p50_ms"], marker="o", label=f"{label} p50")
        ax.plot(
            rows["batch"],
            rows["latency_p95_ms"],
            marker="x",
            linestyle="--",
            color=line.get_color(),
            label=f"{label} p95",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(analysis.batches, [str(batch) for batch in analysis.batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency per batch (ms)")
    ax.set_title("Latency vs batch size (solid: p50, dashed: p95)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save(fig, path)
    return ""


_latency_vs_batch.required = ("latency_p50_ms", "latency_p95_ms")


def _speedup(analysis: Analysis, path: Path) -> str:
    comparisons = analysis.throughput
    if comparisons.height == 0 or "ratio" not in comparisons.columns:
        raise Skip(f"no configuration could be compared with the baseline {analysis.settings.baseline}")
    frame = comparisons.filter((pl.col("metric") == "tokens_per_s") & pl.col("ratio").is_not_null())
    if frame.height == 0:
        raise Skip(f"no configuration could be compared with the baseline {analysis.settings.baseline}")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _grouped_bars(ax, analysis, frame, "ratio", "ci_low", "ci_high", annotate="{:.2f}x")
    ax.axhline(1.0, color="grey", linewidth=1, linestyle="--")
    ax.set_ylabel(f"tokens/s relative to {analysis.settings.baseline} (x)")
    level = int(round(analysis.settings.confidence * 100))
    ax.set_title(f"Speedup vs {analysis.settings.baseline} with {level}% bootstrap intervals (above 1: faster)")
    save(fig, path)
    return "bars without a batch size are the geometric mean over all batch sizes"


_speedup.required = ("tokens_per_s",)


def _throughput_by_hardware(analysis: Analysis, path: Path) -> str:
    """Each configuration (model, precision, batch, ...) with one bar per machine."""
    machines = analysis.machines
    varying = [column for column in analysis.varying_group_columns() if column not in ("hardware", "device")]
    frame = _ordered(analysis, analysis.table.filter(pl.col("tokens_per_s").is_not_null()))
    names = [
        " ".join([*(str(row[column]) for column in varying), row["precision"], f"b{row['batch']}"])
        for row in frame.iter_rows(named=True)
    ]
    frame = frame.with_columns(pl.Series("_label", names))
    categories = list(dict.fromkeys(names))
    width = 0.8 / len(machines)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(categories) * max(1, len(machines) / 2)), 4.5))
    for index, machine in enumerate(machines):
        rows = frame.filter(pl.col(HARDWARE_AXIS) == machine).unique("_label", keep="first", maintain_order=True)
        positions = [categories.index(label) + (index - (len(machines) - 1) / 2) * width for label in rows["_label"]]
        heights = rows.get_column("tokens_per_s").to_list()
        bars = ax.bar(positions, heights, width, label=machine)
        ax.bar_label(bars, labels=[f"{height:.3g}" for height in heights], fontsize=7, padding=2)
    rotate = len(categories) > 4
    ax.set_xticks(range(len(categories)), categories, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_xlabel("configuration (precision, batch size)")
    ax.set_ylabel("generated tokens / s")
    ax.set_title("Throughput of each configuration across hardware (higher is better)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
    return f"ratios against {analysis.settings.baseline_hardware}, with intervals, are in the hardware comparison table"


_throughput_by_hardware.required = ("tokens_per_s",)
_throughput_by_hardware.several_machines = True  # drawn only where the jobs ran on several machines


def _quality_vs_memory(analysis: Analysis, path: Path) -> str:
    metrics = analysis.quality[:2]
    if not metrics:
        raise Skip("no quality metric in the summary (run with quality on)")
    memory = "weight_memory_gb" if column_or_none(analysis.table, "weight_memory_gb") is not None else "peak_memory_gb"
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        frame = analysis.table.filter(pl.col(metric.column).is_not_null())
        bits = column_or_none(frame, "bits_per_weight") is not None
        frame = frame.group_by([*analysis.varying_group_columns(), "precision"], maintain_order=True).agg(
            pl.col(memory).median(),
            pl.col(metric.column).first(),
            *([pl.col("bits_per_weight").first()] if bits else []),
        )
        names = labels(analysis, frame)
        if bits:  # how much each method shrank the linear weights, beside its name
            names = [
                name if value is None else f"{name} ({value:.1f} bits/w)"
                for name, value in zip(names, frame["bits_per_weight"].to_list())
            ]
        xs, ys = frame[memory].to_list(), frame[metric.column].to_list()
        ax.scatter(xs, ys, s=40, zorder=3)
        for x, y, name, offset in zip(xs, ys, names, _stacked_label_offsets(xs, ys)):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        frontier = _pareto_front(xs, ys, metric.higher_is_better)
        ax.plot(
            [xs[i] for i in frontier], [ys[i] for i in frontier], color="grey", linestyle="--", label="Pareto frontier"
        )
        ax.set_xlabel(f"{memory.replace('_gb', '').replace('_', ' ')} (GB)")
        ax.set_ylabel(metric.label)
        ax.set_title(f"{metric.label} vs memory ({'higher' if metric.higher_is_better else 'lower'} is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, path)
    return "the frontier joins the configurations that no other beats on both memory and quality"


_quality_vs_memory.required = ()


def _stacked_label_offsets(
    xs: list[float], ys: list[float], near: float = 0.03, line_points: int = 10
) -> list[tuple[int, int]]:
    """Label offsets (points) that stack the labels of points lying almost on top of each other.

    Points within `near` of each axis' span (e.g. bf16 and fp16: same weight size, nearly the same
    quality) would print their labels over one another; each later one goes a line higher.
    """
    x, y = np.array(xs, dtype=float), np.array(ys, dtype=float)  # None (not measured): nan, near nothing

    def span(values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        return float(finite.max() - finite.min()) if finite.size and finite.max() > finite.min() else 1.0

    close_x = np.abs(x[:, None] - x[None, :]) <= near * span(x)
    close_y = np.abs(y[:, None] - y[None, :]) <= near * span(y)
    return [
        (5, 4 + int((close_x[index, :index] & close_y[index, :index]).sum()) * line_points) for index in range(len(xs))
    ]


def _pareto_front(memory: list[float], quality: list[float], higher_is_better: bool) -> list[int]:
    """Indices of points not dominated in (less memory, better quality), sorted by memory."""
    sign = 1 if higher_is_better else -1
    order = sorted(range(len(memory)), key=lambda i: (memory[i], -sign * quality[i]))
    front, best = [], -np.inf
    for index in order:
        if sign * quality[index] > best:
            front.append(index)
            best = sign * quality[index]
    return front


class Skip(Exception):
    """A figure that cannot be drawn from this sweep; the message says why."""


def _telemetry(analysis: Analysis, path: Path) -> str:
    rows = _ordered(analysis, analysis.table)
    try:
        return draw_telemetry(analysis.sweep, rows, labels(analysis, rows), path)
    except NoTelemetry as missing:
        raise Skip(str(missing)) from None


_telemetry.required = ("telemetry_samples",)


FIGURES: tuple[tuple[str, str, Callable[[Analysis, Path], str]], ...] = (
    ("throughput", "Throughput vs precision per batch size", _throughput),
    ("memory", "Peak and weight memory vs precision", _memory),
    ("latency", "Latency p50/p95 grouped by precision", _latency),
    ("latency_vs_batch", "Latency vs batch size", _latency_vs_batch),
    ("speedup", "Speedup vs baseline", _speedup),
    (
        "cost_per_1k_tokens",
        "Cost per 1k generated tokens",
        _bar_figure(
            "cost_per_1k_tokens_usd",
            "USD per 1k generated tokens",
            "Cost per 1k generated tokens (lower is better)",
            "${:.3g}",
        ),
    ),
    (
        "savings",
        "Savings vs baseline",
        _bar_figure(
            "savings_vs_baseline_pct",
            "% cheaper per token than {baseline}",
            "Savings vs {baseline} per 1k tokens at the same batch size (above 0: cheaper)",
            "{:.0f}%",
            reference=0.0,
        ),
    ),
    (
        "queries_per_dollar",
        "Queries per dollar",
        _bar_figure("queries_per_dollar", "queries per USD", "Queries per dollar (higher is better)", "{:,.0f}"),
    ),
    (
        "roofline",
        "Decode throughput as % of the memory-bandwidth ceiling",
        _bar_figure(
            "roofline_pct", "% of bandwidth ceiling", "Decode tokens/s as % of the memory-bandwidth roofline", "{:.1f}%"
        ),
    ),
    ("quality_vs_memory", "Quality vs memory (Pareto)", _quality_vs_memory),
    (
        "energy_per_token",
        "Energy per generated token",
        _bar_figure(
            "energy_per_token_j", "joules per generated token", "Energy per generated token (lower is better)", "{:.3g}"
        ),
    ),
    ("telemetry", "Power and clock over time per job", _telemetry),
    ("throughput_by_hardware", "Throughput across hardware", _throughput_by_hardware),
)


def make_figures(analysis: Analysis, directory: Path) -> list[Figure]:
    """Draw every offline figure that this sweep's columns allow into `directory` (PNG); the
    serving figures are serving_plots.py's."""
    figures = []
    if analysis.table.height == 0 and analysis.serving is not None:
        return []  # a serving sweep: no offline figure is missing
    for name, title, draw in FIGURES:
        if getattr(draw, "several_machines", False) and len(analysis.machines) < 2:
            continue  # not a missing figure: there is nothing to compare across
        missing = [column for column in getattr(draw, "required", ()) if column_or_none(analysis.table, column) is None]
        if analysis.table.height == 0:
            figures.append(Figure(name, title, None, "no ok results"))
            continue
        if missing:
            figures.append(Figure(name, title, None, f"skipped: no values in column(s) {', '.join(missing)}"))
            continue
        path = Path(directory) / f"{name}.png"
        try:
            note = draw(analysis, path)
        except Skip as skip:
            plt.close("all")
            figures.append(Figure(name, title, None, f"skipped: {skip}"))
            continue
        figures.append(Figure(name, title, path, note))
    return figures
