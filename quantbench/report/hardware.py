"""The report's hardware section, present when the sweeps ran on several machines: each
configuration's tokens/s on each machine, and each machine's ratio against the baseline machine."""

from __future__ import annotations

import polars as pl

from quantbench.analysis.analyze import Analysis
from quantbench.analysis.formatting import fmt_number
from quantbench.analysis.hardware_axis import HARDWARE_AXIS
from quantbench.analysis.sweep import column_or_none
from quantbench.report.document import Paragraph, Table
from quantbench.report.precisions import precision_rank
from quantbench.report.ratios import ratio_table


def hardware_blocks(analysis: Analysis) -> list:
    """Several machines: each configuration's throughput on each, and each machine's ratio against
    the baseline machine with its interval, like with like."""
    machines = analysis.machines
    varying = [column for column in analysis.varying_group_columns() if column not in ("hardware", "device")]
    engine = ", engine" if column_or_none(analysis.table, "engine") is not None else ""
    blocks: list = [
        Paragraph(
            f"The same configuration (model, precision, batch size{engine}, dataset and generation length) on each "
            f"machine; ratios of generated tokens/s against `{analysis.settings.baseline_hardware}` "
            "(choose with --baseline-hardware)."
        )
    ]
    wide = (
        analysis.table.filter(pl.col("tokens_per_s").is_not_null())
        .group_by([*varying, "precision", "batch", HARDWARE_AXIS], maintain_order=True)
        .agg(pl.col("tokens_per_s").first())
        .pivot(on=HARDWARE_AXIS, index=[*varying, "precision", "batch"], values="tokens_per_s")
    )
    wide = wide.sort([*varying, "batch", precision_rank(analysis)])
    blocks.append(
        Table(
            (
                *(name.capitalize() for name in varying),
                "Batch",
                "Precision",
                *(f"{machine} tokens/s" for machine in machines),
            ),
            tuple(
                (
                    *(str(row[name]) for name in varying),
                    str(row["batch"]),
                    row["precision"],
                    *(fmt_number(row.get(machine)) for machine in machines),
                )
                for row in wide.iter_rows(named=True)
            ),
            (*(False for _ in varying), True, False, *(True for _ in machines)),
        )
    )
    ratios = (
        ratio_table(
            analysis,
            analysis.hardware,
            [*varying, "precision"],
            (HARDWARE_AXIS, "Hardware"),
            analysis.settings.baseline_hardware,
        )
        if analysis.hardware.height
        else None
    )
    blocks.append(ratios if ratios is not None else Paragraph("No configuration ran on more than one machine."))
    return blocks
