"""A real sweep writes its report at the end: figures, and statistics that agree with its summary."""

from __future__ import annotations

import polars as pl
from support.report_text import assert_links_resolve_to_pngs, markdown_links, section, table_rows

from quantbench.analysis.formatting import fmt_ratio


def test_a_real_sweep_writes_its_report_at_the_end(tmp_path, run_quantbench):
    sweep = run_quantbench(["-m", "model=tiny-llama", "bench=quick", "precision=fp32,bf16", "batch=1,2"], tmp_path)
    report = sweep / "report.md"
    assert report.is_file() and (sweep / "report.html").is_file()
    markdown = report.read_text()
    assert_links_resolve_to_pngs(report, markdown_links(markdown))
    summary = pl.read_parquet(sweep / "summary.parquet")
    rows = [
        row for row in table_rows(section(markdown, "Statistics: tokens/s vs fp32")) if not row[0].startswith("all")
    ]
    assert [(int(row[0]), row[1]) for row in rows] == [(1, "bf16"), (2, "bf16")]
    for batch, precision, _, ratio, *_ in rows:
        values = dict(summary.filter(pl.col("batch") == int(batch)).select("precision", "tokens_per_s").iter_rows())
        assert ratio == fmt_ratio(values[precision] / values["fp32"])
    # On this CPU the job measured the bandwidth (cached per CPU) and estimated the price per core.
    assert "measured on the machine that ran the job" in markdown and "cores x $" in markdown
