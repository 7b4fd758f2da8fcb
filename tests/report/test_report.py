"""`quantbench report`: report.md/report.html from synthetic sweeps; figures and links (a real sweep's
report: tests/e2e/test_report_sweep.py)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from support.report_text import assert_links_resolve_to_pngs, html_image_sources, markdown_links, section, table_rows
from support.synthetic_sweep import SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.analysis.findings import findings
from quantbench.analysis.formatting import fmt_number, fmt_p, fmt_ratio
from quantbench.cli import main as cli
from quantbench.config.schema import AnalysisConfig
from quantbench.report import write_report

SETTINGS = AnalysisConfig(bootstrap_resamples=500)


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    sweep = write_sweep(tmp_path_factory.mktemp("sweep"))
    return sweep, write_report(sweep, SETTINGS)


def test_report_files_figures_and_links(synthetic_report):
    sweep, files = synthetic_report
    assert files.markdown == sweep / "report.md" and files.html == sweep / "report.html"
    markdown = files.markdown.read_text()
    links = markdown_links(markdown)
    assert len(links) == 10  # every figure of the issue, plus the roofline
    assert_links_resolve_to_pngs(files.markdown, links)
    assert_links_resolve_to_pngs(files.html, html_image_sources(files.html.read_text()))
    for heading in (
        "Findings",
        "Environment",
        "Performance",
        "Statistics: tokens/s vs fp32",
        "Cost",
        "Quality",
        "Figures",
    ):
        assert f"## {heading}\n" in markdown, heading


def test_statistics_table_has_the_issue_shape_and_agrees_with_the_summary(synthetic_report):
    sweep, files = synthetic_report
    markdown = files.markdown.read_text()
    stats = section(markdown, "Statistics: tokens/s vs fp32")
    assert stats.startswith("| Batch | Precision | Direction | × vs fp32 | 95% CI | p |")
    summary = pl.read_parquet(sweep / "summary.parquet")
    rows = table_rows(stats)
    assert len(rows) == 3 * 2 + 3  # per batch, then the geometric means
    for batch, precision, direction, ratio, interval, p_value, *_ in rows:
        if batch.startswith("all"):
            continue
        values = dict(summary.filter(pl.col("batch") == int(batch)).select("precision", "tokens_per_s").iter_rows())
        assert ratio == fmt_ratio(values[precision] / values["fp32"])
        assert direction == ("faster" if precision == "bf16" else "slower")
        low, high = (float(x) for x in interval.split("–"))
        assert low < values[precision] / values["fp32"] < high
        assert p_value == fmt_p(0.0)


def test_performance_table_agrees_with_the_summary(synthetic_report):
    sweep, files = synthetic_report
    summary = pl.read_parquet(sweep / "summary.parquet")
    for batch, precision, tokens_per_s, qps, *_ in table_rows(section(files.markdown.read_text(), "Performance")):
        row = summary.filter((pl.col("batch") == int(batch)) & (pl.col("precision") == precision)).row(0, named=True)
        assert tokens_per_s == fmt_number(row["tokens_per_s"])
        assert qps == fmt_number(row["qps"])


def test_quality_and_findings_state_the_paired_test(synthetic_report):
    _, files = synthetic_report
    markdown = files.markdown.read_text()
    quality = section(markdown, "Quality")
    assert (
        "McNemar" in quality
        and "| nf4 | 200 | 60.0% | 50.0% | -10.0 | -14.2 to -5.7 | – | 20 / 0 | <0.001 | yes |" in quality
    )
    findings = section(markdown, "Findings")
    assert "bf16 is faster than fp32 over all batch sizes" in findings
    assert "nf4 answers 50.0% of 200 questions correctly vs 60.0% for fp32" in findings


def test_figures_without_their_columns_are_skipped_with_a_reason(tmp_path):
    # An accelerator nobody knows (no price, no bandwidth), no quality, one batch size.
    precisions = tuple(
        SyntheticPrecision(p.name, p.speed, p.weight_memory_gb, p.peak_memory_gb, dtype=p.dtype)
        for p in SyntheticSweep().precisions
    )
    spec = SyntheticSweep(
        precisions=precisions,
        batches=(4,),
        iterations=6,
        price_per_hour_usd=None,
        memory_bandwidth_gb_s=None,
        device_type="cuda",
        device_name="Unknown Accelerator",
    )
    files = write_report(write_sweep(tmp_path, spec), SETTINGS)
    markdown = files.markdown.read_text()
    assert_links_resolve_to_pngs(files.markdown, markdown_links(markdown))
    skipped = section(markdown, "Figures").split("Figures not drawn:", 1)[1]
    for title in (
        "Latency vs batch size",
        "Cost per 1k generated tokens",
        "Quality vs memory (Pareto)",
        "memory-bandwidth ceiling",
    ):
        assert title in skipped, title
    assert "No price per hour is known" in markdown
    assert "only 6 iterations (< 10)" in markdown


def test_skipped_jobs_are_listed_with_their_reason(tmp_path):
    precisions = (
        *SyntheticSweep().precisions[:2],
        SyntheticPrecision("nf4", 1, 0, 0, status="skipped", reason="requires bitsandbytes"),
    )
    files = write_report(write_sweep(tmp_path, SyntheticSweep(precisions=precisions, iterations=5)), SETTINGS)
    jobs = section(files.markdown.read_text(), "Jobs")
    assert "6 jobs: 4 ok, 2 skipped." in jobs
    assert "| 1 | nf4 | skipped | requires bitsandbytes |" in jobs


def test_two_models_are_each_compared_with_their_own_baseline(tmp_path):
    write_sweep(tmp_path, SyntheticSweep(model="small", iterations=6))
    fast = tuple(
        SyntheticPrecision(
            p.name,
            p.speed * (2 if p.name == "bf16" else 1),
            p.weight_memory_gb,
            p.peak_memory_gb,
            p.accuracy,
            p.kld_mean,
            p.dtype,
        )
        for p in SyntheticSweep().precisions
    )
    files = write_report(
        write_sweep(tmp_path, SyntheticSweep(model="large", precisions=fast, iterations=6), first_job=8), SETTINGS
    )
    markdown = files.markdown.read_text()
    stats = section(markdown, "Statistics: tokens/s vs fp32")
    assert stats.startswith("| Model | Batch | Precision | Direction | × vs fp32 | 95% CI | p |")
    ratios = {(row[0], row[1], row[2]): float(row[4].rstrip("×")) for row in table_rows(stats)}
    assert ratios[("large", "1", "bf16")] == pytest.approx(3.0, rel=0.1)
    assert ratios[("small", "1", "bf16")] == pytest.approx(1.5, rel=0.1)
    assert "bf16 (model large) is faster than fp32" in markdown
    assert_links_resolve_to_pngs(files.markdown, markdown_links(markdown))


def test_report_command(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(iterations=5, batches=(1,)))
    assert (
        cli.main(["report", str(sweep), "--baseline", "bf16", "--resamples", "200", "--output", str(tmp_path / "out")])
        == 0
    )
    assert "wrote" in capsys.readouterr().out
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| Batch | Precision | Direction | × vs bf16 | 95% CI | p |" in markdown
    assert_links_resolve_to_pngs(tmp_path / "out" / "report.md", markdown_links(markdown))


def test_report_command_on_a_missing_directory(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err.strip()
    assert "does not exist" in error and len(error.splitlines()) == 1


def test_report_command_on_an_empty_directory(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "no job results" in capsys.readouterr().err


def test_a_sweep_whose_jobs_ran_on_different_software_says_so(tmp_path):
    sweep = write_sweep(tmp_path, SyntheticSweep(batches=(1,)))
    assert not [line for line in findings(analyze(sweep, SETTINGS)) if "same software" in line]
    # As after `quantbench resume` with a newer checkout and torch: two jobs differ.
    job_dirs = sorted(path for path in sweep.iterdir() if (path / "result.json").is_file())
    for index, job_dir in enumerate(job_dirs):
        result = json.loads((job_dir / "result.json").read_text())
        result["environment"]["git_commit"] = "fedcba9876543210"
        if index < 2:
            result["environment"] |= {"git_commit": "0123456789abcdef-dirty", "versions": {"torch": "newer"}}
        (job_dir / "result.json").write_text(json.dumps(result))
    mixed = [line for line in findings(analyze(sweep, SETTINGS)) if "same software" in line]
    assert len(mixed) == 1
    assert "git_commit: 0123456789-dirty (fp32@1, bf16@1), fedcba9876 (int8@1, nf4@1)" in mixed[0]
    assert "torch: newer (fp32@1, bf16@1), test (" in mixed[0]
