"""Served fidelity in the report and in `quantbench recommend`, on the synthetic serving sweep of
test_serving_report.py (fp32 and nf4 served at 1, 2 and 4 users, E2E p95 1000/1500/2500 ms and
800/1200/1800 ms) with served fidelity added to its levels, known answers:

    served top-1 %   c=1    c=2    c=4       (c=4 measured under load, c=1 and c=2: the no-load value)
    fp32            99.8   99.8   99.5
    nf4             93.0   93.0   88.0
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_serving_report import write_mixed_sweep

from quantbench.analysis.analyze import analyze
from quantbench.analysis.frontier import Limits
from quantbench.cli.recommend import main as recommend_main
from quantbench.collect.sweeps import write_summary
from quantbench.config.schema import AnalysisConfig
from quantbench.jobdir import read_result, write_result
from quantbench.loadgen.quality_goodput import quality_goodput_columns
from quantbench.report.recommend_serving import ServingLimits, recommend_serving

# precision -> (no load, under load at 4 users): (top-1 %, KL nats)
FIDELITY = {"fp32": ((99.8, 0.0004), (99.5, 0.0009)), "nf4": ((93.0, 0.05), (88.0, 0.09))}
MIN_TOP1 = 95.0


def add_served_fidelity(job_dir: Path, precision: str) -> None:
    """What a job with serve.fidelity.enabled=true and serve.fidelity_min_top1=95 records."""
    result = read_result(job_dir)
    (top1_idle, kld_idle), (top1_loaded, kld_loaded) = FIDELITY[precision]
    metrics = result.metrics
    metrics |= {
        "served_fidelity_protocol": "llama-server",
        "served_fidelity_method": "llama-server /completion, teacher-forced",
        "served_fidelity_top_k": 64,
        "served_fidelity_unavailable": None,
        "served_top1_agree_no_load": top1_idle,
        "served_top1_agree_no_load_ci_low": top1_idle - 2,
        "served_top1_agree_no_load_ci_high": min(top1_idle + 1, 100.0),
        "served_kld_mean_no_load": kld_idle,
        "served_top1_agree_under_load": top1_loaded,
        "served_kld_mean_under_load": kld_loaded,
        "served_fidelity_tokens_no_load": 128,
        "served_fidelity_tokens_under_load": 96,
        "served_fidelity_error_no_load": None,
        "served_fidelity_error_under_load": None,
    }
    for level in metrics["levels"]:
        loaded = level["concurrency"] == 4
        top1, kld = (top1_loaded, kld_loaded) if loaded else (top1_idle, kld_idle)
        fidelity = {"served_top1_agree": top1, "served_kld_mean": kld, "served_fidelity_tokens": 96 if loaded else 128}
        level |= fidelity | {"fidelity_measured_at": "under load (this level)" if loaded else "no load"}
        level |= quality_goodput_columns(level, fidelity, MIN_TOP1, None)
    result.config["serve"] |= {"fidelity": {"enabled": True}, "fidelity_min_top1": MIN_TOP1}
    write_result(job_dir, result)


@pytest.fixture
def sweep(tmp_path) -> Path:
    directory = write_mixed_sweep(tmp_path / "sweep")
    add_served_fidelity(directory / "0", "fp32")
    add_served_fidelity(directory / "1", "nf4")
    write_summary(directory)
    return directory


def test_recommend_filters_on_served_top1_agreement(sweep, capsys):
    analysis = analyze(sweep, AnalysisConfig(), comparisons=False)
    # Without the limit nf4 wins at 2 users (faster); with it, fp32.
    assert recommend_serving(analysis, ServingLimits(users=2), Limits()).best["precision"] == "nf4"
    result = recommend_serving(analysis, ServingLimits(users=2, min_top1_agreement=95.0), Limits())
    assert result.best["precision"] == "fp32" and result.best["served_top1_agree"] == 99.8
    nf4 = next(reason for label, reason in result.excluded if label.startswith("nf4"))
    assert nf4 == "served top-1 agreement 93.0 % < 95 % (no load)"
    # Between 2 and 4 users the worse of the two levels applies: fp32's 99.5 % under load.
    result = recommend_serving(analysis, ServingLimits(users=3, min_top1_agreement=99.6), Limits())
    assert result.best is None
    assert any("served top-1 agreement 99.5 % < 99.6 % (the worse of the two levels" in r for _, r in result.excluded)
    assert recommend_main([str(sweep), "--users", "4", "--max-served-kld", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "**fp32 @ 4 users**" in out and "served top-1 %" in out and "max served KL nats = 0.01" in out
    assert "nf4 @ 4 users: served KL divergence 0.09 > 0.01 nats (under load (this level))" in out
    assert recommend_main([str(sweep), "--users", "1", "--min-quality-goodput", "0.5"]) == 0
    assert "nf4 @ 1 users: quality goodput 0 req/s < minimum 0.5 req/s" in capsys.readouterr().out
    assert recommend_main([str(sweep), "--min-top1-agreement", "0.95"]) == 2
    assert "looks like a fraction" in capsys.readouterr().err


def test_a_sweep_without_served_fidelity_is_excluded_with_the_reason(tmp_path, capsys):
    directory = write_mixed_sweep(tmp_path / "plain")
    assert recommend_main([str(directory), "--users", "2", "--min-top1-agreement", "90"]) == 1
    out = capsys.readouterr().out
    assert "no served fidelity measured (the job ran without serve.fidelity.enabled)" in out


def test_report_shows_served_fidelity_and_quality_goodput(sweep):
    from quantbench.report.document import Document
    from quantbench.report.markdown import render_markdown
    from quantbench.report.serving import serving_blocks

    # The serving section alone (write_report would draw every figure too: seconds).
    document = Document("serving")
    document.add(*serving_blocks(analyze(sweep, AnalysisConfig(bootstrap_resamples=50), comparisons=False)))
    text = render_markdown(document)
    assert "### Fidelity through the server" in text
    block = text.split("### Fidelity through the server")[1].split("###")[0]
    assert "99.8 [97.8, 100.0]" in block and "88.0" in block and "128 / 96" in block
    levels = text.split("### Every load level")[1].split("###")[0]
    assert "served top-1 %" in levels and "quality goodput req/s" in levels
