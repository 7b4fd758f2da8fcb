"""The report's offline sections (timed generate() on a static batch): performance, throughput and
QPS statistics, cost, roofline, quality and energy. A serving-only sweep has none of them."""

from __future__ import annotations

from quantbench.analysis.analyze import Analysis
from quantbench.report.config_tables import COST_COLUMNS, PERFORMANCE_COLUMNS, ROOFLINE_COLUMNS, config_table
from quantbench.report.document import Heading, Paragraph, Table
from quantbench.report.energy import ENERGY_TABLE_COLUMNS, energy_blocks
from quantbench.report.quality import quality_blocks
from quantbench.report.ratios import statistics_table


def offline_blocks(analysis: Analysis) -> list:
    """Each offline section under its heading; none where the sweep served only."""
    if analysis.table.height == 0 and analysis.serving is not None:
        return []
    baseline = analysis.settings.baseline
    sections = (  # (title, (table, footnote of its flagged tail percentiles))
        ("Performance", config_table(analysis, analysis.table, PERFORMANCE_COLUMNS)),
        (f"Statistics: tokens/s vs {baseline}", (statistics_table(analysis, "tokens_per_s"), None)),
        (f"Statistics: QPS vs {baseline}", (statistics_table(analysis, "qps"), None)),
        ("Cost", config_table(analysis, analysis.table, COST_COLUMNS)),
        ("Roofline (decode vs memory-bandwidth ceiling)", config_table(analysis, analysis.table, ROOFLINE_COLUMNS)),
    )
    blocks: list = []
    for title, (table, tails) in sections:
        blocks += [Heading(2, title), table if table is not None else Paragraph("Not available for this sweep.")]
        blocks += _table_notes(analysis, title, table, tails)
    blocks += [Heading(2, "Quality"), *quality_blocks(analysis)]
    energy_table, _ = config_table(analysis, analysis.table, ENERGY_TABLE_COLUMNS)  # no percentile columns
    blocks += [
        Heading(2, "Energy"),
        *energy_blocks(analysis, energy_table, statistics_table(analysis, "tokens_per_kwh")),
    ]
    return blocks


def _table_notes(analysis: Analysis, title: str, table: Table | None, tails: str | None) -> list[Paragraph]:
    """What a reader must know under a table: its flagged tail percentiles (`tails`, config_table's
    footnote), and which interval it shows."""
    if table is None:
        return []
    notes = [Paragraph(tails)] if tails else []
    if title.startswith("Statistics:") and analysis.interval_note:
        notes.append(Paragraph(analysis.interval_note))
    return notes
