"""The report's figures section: each drawn figure under its title, linked relative to the report,
and the ones not drawn with the reason."""

from __future__ import annotations

import os
from pathlib import Path

from quantbench.analysis.plots import Figure
from quantbench.report.document import Bullets, Heading, Image, Paragraph


def figure_blocks(figures: list[Figure], report_dir: Path) -> list:
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
