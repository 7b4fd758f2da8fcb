"""`quantbench report DIR`: report.md and report.html (with PNG figures) for a sweep directory.

It also runs at the end of every sweep (`analysis.report_at_end`, see callbacks.py).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from quantbench.analysis.stats import StatsSettings
from quantbench.errors import QuantbenchError

REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    figures: list[Path]


def settings_from_config(analysis: Mapping[str, Any] | None) -> StatsSettings:
    """StatsSettings from an `analysis` config node (the schema's field names)."""
    analysis = dict(analysis or {})
    defaults = StatsSettings()
    return StatsSettings(
        baseline=str(analysis.get("baseline", defaults.baseline)),
        confidence_level=float(analysis.get("confidence_level", defaults.confidence_level)),
        resamples=int(analysis.get("bootstrap_resamples", defaults.resamples)),
        seed=int(analysis.get("seed", defaults.seed)),
        alpha=float(analysis.get("alpha", defaults.alpha)),
        min_iterations=int(analysis.get("min_iterations", defaults.min_iterations)),
    )


def write_report(
    sweep_dir: str | Path,
    settings: StatsSettings | None = None,
    output_dir: str | Path | None = None,
    cache_dir: Path | None = None,
) -> ReportFiles:
    """Analyse the sweep and write report.md, report.html and figures/ into `output_dir` (the sweep)."""
    from quantbench.analysis.analyze import analyze
    from quantbench.analysis.plots import make_figures
    from quantbench.report.build import build_document
    from quantbench.report.html import render_html
    from quantbench.report.markdown import render_markdown
    from quantbench.results import write_bytes_atomic

    analysis = analyze(sweep_dir, settings, cache_dir)
    report_dir = Path(output_dir) if output_dir else analysis.sweep.directory
    figures = make_figures(analysis, report_dir / FIGURES_DIR)
    document = build_document(analysis, figures, report_dir)
    markdown, html = report_dir / REPORT_MARKDOWN, report_dir / REPORT_HTML
    write_bytes_atomic(markdown, render_markdown(document).encode())
    write_bytes_atomic(html, render_html(document).encode())
    return ReportFiles(markdown, html, [figure.path for figure in figures if figure.path is not None])


def _sweep_analysis_config(sweep_dir: Path) -> Mapping[str, Any] | None:
    """The `analysis` node the sweep ran with, so `quantbench report` repeats its settings."""
    from quantbench.analysis.sweep import load_sweep

    try:
        result = load_sweep(sweep_dir).first_result() or {}
    except QuantbenchError:
        return None
    return (result.get("config") or {}).get("analysis")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantbench report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (e.g. multirun/2026-11-22/12-00-00)")
    parser.add_argument("--baseline", help="precision every other is compared with (default: the sweep's analysis.baseline, fp32)")
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default 2000)")
    parser.add_argument("--confidence", type=float, help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    parser.add_argument("--output", type=Path, help="write the report here instead of into the sweep directory")
    parser.add_argument("--cache-dir", type=Path, help="where the CPU bandwidth measurement is cached (default: the sweep's cache_dir)")
    args = parser.parse_args(argv)
    settings = settings_from_config(_sweep_analysis_config(args.sweep_dir))
    overrides = {"baseline": args.baseline, "resamples": args.resamples, "confidence_level": args.confidence, "seed": args.seed}
    settings = StatsSettings(**{**settings.__dict__, **{key: value for key, value in overrides.items() if value is not None}})
    try:
        files = write_report(args.sweep_dir, settings, args.output, args.cache_dir)
    except QuantbenchError as error:
        print(f"quantbench report: {error}", file=sys.stderr)
        return 2
    print(f"wrote {files.markdown}, {files.html} and {len(files.figures)} figures in {files.markdown.parent / FIGURES_DIR}")
    return 0
