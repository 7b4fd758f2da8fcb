"""report.md and report.html (with PNG figures) for sweep directories: `quantbench report` (quantbench.cli.report).

It also runs at the end of every sweep (`analysis.report_at_end`, quantbench.sweep.callbacks). Several sweep
directories (one per machine, say) make one report with the hardware as an axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quantbench.config.schema import AnalysisConfig
from quantbench.errors import QuantbenchError

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
    figures = make_figures(analysis, report_dir / FIGURES_DIR) + serving_figures(
        analysis.serving, report_dir / FIGURES_DIR
    )
    document = build_document(analysis, figures, report_dir)
    markdown, html = report_dir / REPORT_MARKDOWN, report_dir / REPORT_HTML
    write_bytes_atomic(markdown, render_markdown(document).encode())
    write_bytes_atomic(html, render_html(document).encode())
    return ReportFiles(markdown, html, [figure.path for figure in figures if figure.path is not None])
