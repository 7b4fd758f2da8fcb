"""`quantbench report DIR [DIR ...]`: report.md and report.html (with PNG figures) for sweep directories.

It also runs at the end of every sweep (`analysis.report_at_end`, see callbacks.py). Several sweep
directories (one per machine, say) make one report with the hardware as an axis.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from quantbench.errors import QuantbenchError
from quantbench.schema import AnalysisConfig

REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    figures: list[Path]


def write_report(
    sweep_dirs: str | Path | list[str | Path],
    settings: AnalysisConfig | None = None,
    output_dir: str | Path | None = None,
) -> ReportFiles:
    """Analyse the sweep(s) and write report.md, report.html and figures/ into `output_dir` (by
    default the sweep directory; several sweeps need one)."""
    from quantbench.analysis.analyze import analyze
    from quantbench.analysis.plots import make_figures
    from quantbench.analysis.serving_plots import serving_figures
    from quantbench.atomic import write_bytes_atomic
    from quantbench.report.build import build_document
    from quantbench.report.html import render_html
    from quantbench.report.markdown import render_markdown

    several = not isinstance(sweep_dirs, (str, Path)) and len(sweep_dirs) > 1
    if several and output_dir is None:
        raise QuantbenchError("a report of several sweep directories needs --output DIR (where report.md goes)")
    analysis = analyze(sweep_dirs, settings)
    report_dir = Path(output_dir) if output_dir else analysis.sweep.directory
    figures = make_figures(analysis, report_dir / FIGURES_DIR) + serving_figures(analysis.serving, report_dir / FIGURES_DIR)
    document = build_document(analysis, figures, report_dir)
    markdown, html = report_dir / REPORT_MARKDOWN, report_dir / REPORT_HTML
    write_bytes_atomic(markdown, render_markdown(document).encode())
    write_bytes_atomic(html, render_html(document).encode())
    return ReportFiles(markdown, html, [figure.path for figure in figures if figure.path is not None])


def main(argv: list[str] | None = None) -> int:
    from quantbench.analysis.sweep import recorded_settings

    parser = argparse.ArgumentParser(prog="quantbench report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+", metavar="sweep_dir",
                        help="a sweep directory (e.g. multirun/2026-11-22/12-00-00); several make one report")
    parser.add_argument("--baseline", help="precision every other is compared with (default: the sweep's analysis.baseline, fp32)")
    parser.add_argument("--baseline-hardware",
                        help="with several machines: the hardware every other is compared with, by hardware or device "
                             "name (default: the first sweep directory's)")
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default 2000)")
    parser.add_argument("--confidence", type=float, help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    parser.add_argument("--output", type=Path,
                        help="write the report here instead of into the sweep directory (needed with several sweeps)")
    args = parser.parse_args(argv)
    try:
        settings = recorded_settings(
            args.sweep_dirs[0],
            baseline=args.baseline,
            baseline_hardware=args.baseline_hardware,
            bootstrap_resamples=args.resamples,
            confidence=args.confidence,
            seed=args.seed,
        )
        files = write_report(args.sweep_dirs, settings, args.output)
    except QuantbenchError as error:
        print(f"quantbench report: {error}", file=sys.stderr)
        return 2
    print(f"wrote {files.markdown}, {files.html} and {len(files.figures)} figures in {files.markdown.parent / FIGURES_DIR}")
    return 0
