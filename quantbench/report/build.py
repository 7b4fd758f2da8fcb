"""The sweep report document: its sections in order, each built by its own module (environment,
jobs, hardware, serving, the offline sections, telemetry, figures, method), under a title, the
sweeps it covers and the analysis's notes and findings."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.findings import findings
from quantbench.analysis.plots import Figure
from quantbench.report.document import Bullets, Document, Heading, Paragraph
from quantbench.report.energy import telemetry_blocks
from quantbench.report.environment import environment_table
from quantbench.report.figures import figure_blocks
from quantbench.report.hardware import hardware_blocks
from quantbench.report.jobs import jobs_blocks
from quantbench.report.method import method_bullets
from quantbench.report.offline import offline_blocks
from quantbench.report.serving import serving_blocks


def build_document(analysis: Analysis, figures: list[Figure], report_dir: Path) -> Document:
    names = " + ".join(directory.name for directory in analysis.sweep.directories)
    document = Document(f"quantbench report: {names}")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sweeps = ", ".join(f"`{directory}`" for directory in analysis.sweep.directories)
    baseline_hardware = (
        f" Baseline hardware: `{analysis.settings.baseline_hardware}`." if len(analysis.machines) > 1 else ""
    )
    document.add(
        Paragraph(
            f"{'Sweeps' if analysis.sweep.merged else 'Sweep'} {sweeps}, analysed {generated}. "
            f"Baseline precision: `{analysis.settings.baseline}`.{baseline_hardware}"
        )
    )
    if analysis.notes:
        document.add(Bullets(tuple(analysis.notes)))
    document.add(Heading(2, "Findings"), Bullets(tuple(findings(analysis))))
    document.add(Heading(2, "Environment"), environment_table(analysis))
    document.add(Heading(2, "Jobs"), *jobs_blocks(analysis))
    if len(analysis.machines) > 1:
        document.add(
            Heading(2, f"Hardware: tokens/s vs {analysis.settings.baseline_hardware}"), *hardware_blocks(analysis)
        )
    if analysis.serving is not None:
        document.add(Heading(2, "Serving"), *serving_blocks(analysis))
    document.add(*offline_blocks(analysis))
    document.add(Heading(2, "Telemetry"), *telemetry_blocks(analysis))
    document.add(Heading(2, "Figures"), *figure_blocks(figures, report_dir))
    document.add(Heading(2, "How these numbers were computed"), method_bullets(analysis))
    return document
