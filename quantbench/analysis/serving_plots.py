"""Figures of the serving rows: latency against load, the throughput-latency curve, goodput.

One line per precision (and per whatever else varies among the serving rows: engine, model, ...),
through its load levels in order. Drawn with the offline figures' machinery (plots.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import polars as pl

from quantbench.analysis.plots import Figure, Skip, plt, save
from quantbench.analysis.serving import LOAD_UNITS, ServingAnalysis, under_resolved

AXIS_LABELS = {"concurrency": "concurrency (users)", "request_rate": "request rate (req/s, Poisson)"}
STYLES = (("p50", "-", "o"), ("p95", "--", "x"), ("p99", ":", "^"))


def _series(serving: ServingAnalysis) -> list[tuple[str, pl.DataFrame]]:
    """(label, rows sorted by load) per line: the precision, prefixed by what else varies."""
    varying = serving.varying()
    keys = [*varying, "precision"]
    return [
        (" ".join(str(value) for value in key), part.sort("load"))
        for key, part in serving.rows.partition_by(keys, as_dict=True, maintain_order=True).items()
    ]


def load_axis_name(serving: ServingAnalysis) -> str:
    """'concurrency', 'request rate', or both where the sweep has closed- and open-loop levels."""
    axes = serving.rows.get_column("load_axis").unique(maintain_order=True).to_list()
    return " / ".join("concurrency" if axis == "concurrency" else "request rate" for axis in axes)


def _xlabel(serving: ServingAnalysis) -> str:
    axes = serving.rows.get_column("load_axis").unique(maintain_order=True).to_list()
    return AXIS_LABELS[axes[0]] if len(axes) == 1 else "load (users, or req/s for open-loop levels)"


def _latency(serving: ServingAnalysis, path: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    flagged = []
    for ax, (name, title) in zip(axes, (("ttft", "Time to first token"), ("e2e", "End-to-end latency"))):
        for label, rows in _series(serving):
            color = None
            for percentile, linestyle, marker in STYLES:
                column = f"{name}_{percentile}_ms"
                if under_resolved(column, rows):
                    flagged.append(f"{label} {name.upper()} {percentile}")
                (line,) = ax.plot(
                    rows["load"],
                    rows[column],
                    linestyle=linestyle,
                    marker=marker,
                    color=color,
                    label=f"{label} {percentile}",
                )
                color = line.get_color()
        ax.set_xlabel(_xlabel(serving))
        ax.set_ylabel("ms")
        ax.set_title(f"{title} (solid p50, dashed p95, dotted p99)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"Serving latency vs {load_axis_name(serving)} (lower is better)")
    save(fig, path)
    note = "each point is one load level of one job"
    if flagged:
        note += "; from fewer requests than the percentile resolves (treat as the maximum): " + ", ".join(
            dict.fromkeys(flagged)
        )
    return note


def _throughput_latency(serving: ServingAnalysis, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, rows in _series(serving):
        ax.plot(rows["e2e_p50_ms"], rows["output_tokens_per_s"], marker="o", label=label)
        unit = LOAD_UNITS[rows["load_axis"][0]]
        for row in rows.iter_rows(named=True):
            if row["e2e_p50_ms"] is not None and row["output_tokens_per_s"] is not None:
                ax.annotate(
                    f"{row['load']:g} {unit}",
                    (row["e2e_p50_ms"], row["output_tokens_per_s"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    ax.set_xlabel("median end-to-end latency (ms)")
    ax.set_ylabel("output tokens / s")
    ax.set_title("Throughput-latency curve (up and to the left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, path)
    return "each point is a load level, labelled with its load"


def _goodput(serving: ServingAnalysis, path: Path) -> str:
    rows = serving.rows
    if "goodput_per_s" not in rows.columns or rows.get_column("goodput_per_s").null_count() == rows.height:
        raise Skip("no serve.slo was set, so no request was judged against one (goodput is not measured)")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, part in _series(serving):
        ax.plot(part["load"], part["goodput_per_s"], marker="o", label=f"{label} goodput")
        ax.plot(
            part["load"],
            part["request_throughput_per_s"],
            linestyle=":",
            color=ax.lines[-1].get_color(),
            label=f"{label} all requests",
        )
    ax.set_xlabel(_xlabel(serving))
    ax.set_ylabel("requests / s")
    ax.set_title("Goodput: requests/s meeting serve.slo (dotted: every successful request)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, path)
    return "goodput counts the requests that met every objective of serve.slo; failed requests never do"


def _server_metrics(serving: ServingAnalysis, path: Path) -> str:
    from quantbench.analysis.server_metrics_plots import draw_server_metrics

    return draw_server_metrics(serving, path)


SERVING_FIGURES: tuple[tuple[str, str, Callable[[ServingAnalysis, Path], str]], ...] = (
    ("serve_latency_vs_load", "Serving: latency vs {axis} per precision", _latency),
    ("serve_throughput_latency", "Serving: throughput-latency curve", _throughput_latency),
    ("serve_goodput", "Serving: goodput per precision", _goodput),
    ("serve_server_metrics", "Serving: the servers' own metrics over time", _server_metrics),
)


def serving_figures(serving: ServingAnalysis | None, directory: Path) -> list[Figure]:
    if serving is None:
        return []
    figures = []
    for name, title, draw in SERVING_FIGURES:
        title = title.format(axis=load_axis_name(serving))
        path = Path(directory) / f"{name}.png"
        try:
            figures.append(Figure(name, title, path, draw(serving, path)))
        except Skip as skip:
            plt.close("all")
            figures.append(Figure(name, title, None, f"skipped: {skip}"))
    return figures
