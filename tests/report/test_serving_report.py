"""The serving section of the report and `recommend`'s serving constraints, on a synthetic sweep
with known answers: 2 precisions x 3 concurrency levels served, plus offline quality jobs.

Every request of a level takes the same time, so each percentile is that time and the answers can
be worked out by hand:

    E2E ms      c=1    c=2    c=4        serve.slo.e2e_ms = 2000
    fp32       1000   1500   2500   -> highest concurrency under the SLO: 2 + (2000-1500)/(2500-1500) x 2 = 3.0
    nf4         800   1200   1800   -> every level meets it: >= 4 users
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.synthetic_sweep import ARCHITECTURE, SyntheticPrecision, SyntheticSweep, write_sweep

from quantbench.analysis.analyze import analyze
from quantbench.analysis.frontier import Limits
from quantbench.analysis.serving import capacity_of
from quantbench.atomic import write_parquet_atomic
from quantbench.cli.recommend import main as recommend_main
from quantbench.collect.sweeps import write_summary
from quantbench.config.schema import AnalysisConfig
from quantbench.jobdir import REQUESTS_FILE, JobResult, write_result
from quantbench.loadgen.metrics import level_summary
from quantbench.loadgen.records import RequestRecord, records_frame
from quantbench.measure.percentiles import min_samples
from quantbench.report import write_report
from quantbench.report.recommend_serving import ServingLimits, recommend_serving

CONCURRENCY = (1, 2, 4)
E2E_MS = {"fp32": (1000.0, 1500.0, 2500.0), "nf4": (800.0, 1200.0, 1800.0)}
REQUESTS_PER_LEVEL = 30  # resolves p95 (20) but not p98 (50) or p99 (100)
OUTPUT_TOKENS = 16
SLO = {"ttft_ms": None, "tpot_ms": None, "e2e_ms": 2000.0}
MODEL = {"name": "synthetic", "family": "decoder", "source": "random_init", "architecture": ARCHITECTURE}


def _precision_config(name: str, dtype: str) -> dict:
    # The shape tests/support/synthetic_sweep.py gives its offline jobs: equal dicts = the same weights.
    return {"name": name, "backend": name, "dtype": dtype}


def write_serve_job(
    job_dir: Path, precision: str, dtype: str = "float32", slo: dict | None = None, endpoint: bool = False
) -> None:
    records, levels = [], []
    for index, (users, e2e_ms) in enumerate(zip(CONCURRENCY, E2E_MS[precision])):
        ttft_ms = e2e_ms / 10
        level = []
        for request in range(REQUESTS_PER_LEVEL):
            chunks = [ttft_ms + (e2e_ms - ttft_ms) * step / (OUTPUT_TOKENS - 1) for step in range(OUTPUT_TOKENS)]
            level.append(
                RequestRecord(
                    level=index,
                    concurrency=users,
                    request_rate=None,
                    request=request,
                    prompt_id=f"p{request}",
                    ok=True,
                    error=None,
                    status_code=200,
                    sent_s=(request // users) * e2e_ms / 1e3,
                    ttft_ms=ttft_ms,
                    e2e_ms=e2e_ms,
                    chunk_ms=chunks,
                    input_tokens=20,
                    output_tokens=OUTPUT_TOKENS,
                    tokens_from="usage",
                    finish_reason="length",
                )
            )
        duration_s = REQUESTS_PER_LEVEL / users * e2e_ms / 1e3
        levels.append(
            {
                "level": index,
                "concurrency": users,
                "request_rate": None,
                **level_summary(level, duration_s, slo if slo is not None else SLO, resamples=50),
                "warmup_failed_requests": 0,
                "prompts_repeated": False,
            }
        )
        records += level
    job_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(job_dir / REQUESTS_FILE, records_frame(records))
    server = (
        {"server_url": "http://127.0.0.1:9"}
        if endpoint
        else {
            "server_command": ["transformers", "serve"],
            "server_command_line": "transformers serve",
            "checkpoint": "/cache/synthetic",
        }
    )
    write_result(
        job_dir,
        JobResult(
            status="ok",
            reason=None,
            identity={
                "model": "synthetic",
                "precision": precision,
                "backend": precision,
                "family": "decoder",
                "batch": 1,
                "hardware": "synthetic",
                "dataset": "builtin",
                "device": "Synthetic CPU",
            },
            config={
                "model": MODEL,
                "precision": _precision_config(precision, dtype),
                "batch": 1,
                "hardware": {"name": "synthetic", "price_per_hour_usd": 2.0},
                "scenario": {"name": "serve"},
                "engine": {"name": "openai" if endpoint else "transformers"},
                "serve": {"concurrency": list(CONCURRENCY), "slo": slo if slo is not None else SLO},
            },
            config_hash=f"serve-{precision}",
            environment={"device_type": "cpu", "device_name": "Synthetic CPU", "versions": {"quantbench": "0.0.test"}},
            metrics={
                "scenario": "serve",
                "engine": "openai" if endpoint else "transformers",
                "max_new_tokens": OUTPUT_TOKENS,
                "price_per_hour_usd": 2.0,
                "price_source": "hardware config (synthetic)",
                **server,
                "levels": levels,
            },
        ),
    )


def write_mixed_sweep(directory: Path, nf4_dtype: str = "float32", slo: dict | None = None) -> Path:
    """Serve jobs 0 (fp32) and 1 (nf4), offline jobs 2.. (fp32 and nf4 at batch 1, with PubMedQA)."""
    write_serve_job(directory / "0", "fp32", slo=slo)
    write_serve_job(directory / "1", "nf4", dtype=nf4_dtype, slo=slo)
    offline = (
        SyntheticPrecision("fp32", 1.0, 0.50, 1.00, 0.60, 0.0, "float32"),
        SyntheticPrecision("nf4", 0.6, 0.09, 0.40, 0.50, 0.050, "float32"),
    )
    return write_sweep(directory, SyntheticSweep(precisions=offline, batches=(1,)), first_job=2)


def test_capacity_is_interpolated_between_levels():
    levels = [
        {"load": float(c), "e2e_p95_ms": e, "n_requests": 30, "n_failed_requests": 0}
        for c, e in zip(CONCURRENCY, E2E_MS["fp32"])
    ]
    found, text = capacity_of(levels, {"e2e_ms": 2000.0}, "users")
    assert found == pytest.approx(3.0)
    assert "interpolated between 2 and 4 users" in text
    assert capacity_of(levels, {"e2e_ms": 900.0}, "users")[0] is None
    assert capacity_of(levels, {"e2e_ms": 5000.0}, "users")[0] == 4.0
    failing = [*levels[:2], {**levels[2], "n_failed_requests": 10}]
    assert capacity_of(failing, {"e2e_ms": 5000.0}, "users")[0] == 2.0  # too many failures: no interpolation
    assert [min_samples(q) for q in (95, 98, 99)] == [20, 50, 100]


def test_serving_report_on_a_mixed_sweep(tmp_path):
    sweep = write_mixed_sweep(tmp_path / "sweep", nf4_dtype="bfloat16")
    files = write_report(sweep, AnalysisConfig(bootstrap_resamples=200))
    text = files.markdown.read_text()
    # The figures.
    for name in ("serve_latency_vs_load", "serve_throughput_latency", "serve_goodput"):
        assert (sweep / "figures" / f"{name}.png").is_file()
        assert f"figures/{name}.png" in text
    assert "Serving: latency vs concurrency per precision" in text
    # The study table, at the highest concurrency both measured (4): E2E of each precision.
    assert "End-to-end latency per precision at 4 users" in text
    study = text.split("End-to-end latency per precision at 4 users")[1].split("###")[0]
    fp32_row = next(line for line in study.splitlines() if line.startswith("| fp32"))
    nf4_row = next(line for line in study.splitlines() if line.startswith("| nf4"))
    assert "2,500" in fp32_row and "1,800" in nf4_row
    # nf4's throughput at 4 users: 480 tokens in 30/4 x 1.8 s = 35.6 tok/s, fp32's 25.6: 1.389x.
    assert "1.389×" in nf4_row
    # weights 0.5 GB (fp32, joined) vs 0.09 GB: nf4 is 82% smaller; but nf4's quality is not joined here.
    assert "E2E p95 ms" in study and "E2E p98* ms" in study  # 30 requests resolve p95, not p98
    assert "E2E p99* ms" in text and "p99 needs 100" in text
    # The highest load under the SLO (E2E p95 <= 2000 ms from serve.slo).
    capacity = text.split("### Highest load under the SLO")[1].split("###")[0]
    assert "3 users (interpolated between 2 and 4 users" in capacity
    assert "≥ 4 users" in capacity
    # Quality joins fp32 (same settings), not nf4 (served with another dtype).
    joins = text.split("Quality, memory and cost of the served weights")[1].split("##")[0]
    assert "same model and quantization settings" in next(
        line for line in joins.splitlines() if line.startswith("| fp32")
    )
    nf4_join = next(line for line in joins.splitlines() if line.startswith("| nf4"))
    assert "not joined: different quantization settings: dtype 'float32' offline, 'bfloat16' served" in nf4_join
    # The offline sections still work on the offline rows of a mixed sweep.
    assert "## Performance" in text and "Statistics: tokens/s vs fp32" in text
    performance = text.split("## Performance")[1].split("##")[0]
    assert performance.count("| 1 ") == 2  # the two offline jobs, no serving row


def test_quality_joins_when_the_weights_match(tmp_path):
    sweep = write_mixed_sweep(tmp_path / "sweep")
    serving = analyze(sweep, AnalysisConfig(bootstrap_resamples=50)).serving
    joined = serving.rows.unique("precision", keep="first").sort("precision")
    assert joined.get_column("quality_joined").to_list() == [True, True]
    assert joined.get_column("pubmedqa_acc").to_list() == [0.6, 0.5]  # fp32, nf4
    assert joined.get_column("weight_memory_gb").to_list() == [0.5, 0.09]
    study = serving.study.sort("precision")
    assert study.get_column("size_reduction_pct").to_list()[1] == pytest.approx(82.0)


def test_endpoint_weights_are_not_joined_and_no_slo_uses_the_analysis_bound(tmp_path):
    sweep = tmp_path / "sweep"
    empty_slo = {"ttft_ms": None, "tpot_ms": None, "e2e_ms": None}
    write_serve_job(sweep / "0", "fp32", slo=empty_slo, endpoint=True)
    write_summary(sweep)
    serving = analyze(sweep, AnalysisConfig(bootstrap_resamples=50)).serving
    assert "which weights it serves is unknown" in serving.rows.get_column("quality_join")[0]
    assert next(iter(serving.capacity.values())).text.startswith("no SLO set")
    bounded = analyze(sweep, AnalysisConfig(bootstrap_resamples=50, serve_max_e2e_p95_ms=1250.0)).serving
    capacity = next(iter(bounded.capacity.values()))
    assert capacity.max_load == pytest.approx(1.5)  # 1 + (1250-1000)/(1500-1000) x 1
    assert "analysis.serve_max_e2e_p95_ms" in capacity.limits
    text = write_report(sweep, AnalysisConfig(bootstrap_resamples=50)).markdown.read_text()
    assert "## Performance" not in text  # a serving-only sweep has no offline section
    assert "Serving: goodput per precision: skipped: no serve.slo was set" in text


def test_recommend_serving_at_interpolated_users(tmp_path, capsys):
    sweep = write_mixed_sweep(tmp_path / "sweep")
    analysis = analyze(sweep, AnalysisConfig(), comparisons=False)
    # At 3 users (between the measured 2 and 4): fp32 E2E p95 = 2000 ms, nf4 = 1500 ms.
    result = recommend_serving(analysis, ServingLimits(users=3, max_e2e_p95_ms=1600.0), Limits())
    assert result.best["precision"] == "nf4"
    assert result.best["e2e_p95_ms"] == pytest.approx(1500.0)
    fp32 = next(reason for label, reason in result.excluded if label.startswith("fp32"))
    assert "E2E p95 2,000 ms > limit 1,600 ms" in fp32
    assert recommend_main([str(sweep), "--users", "3", "--max-e2e-p95-ms", "1400"]) == 1  # nothing meets it
    capsys.readouterr()
    assert recommend_main([str(sweep), "--users", "4", "--max-e2e-p95-ms", "2000", "--max-quality-drop", "5"]) == 1
    out = capsys.readouterr().out
    assert "fp32 @ 4 users: E2E p95 2,500 ms > limit 2,000 ms" in out
    assert "nf4 @ 4 users: PubMedQA accuracy drop (percentage points) 10 > limit 5" in out
    assert recommend_main([str(sweep), "--users", "8"]) == 1
    assert "no level at 8 users measured (measured: 1, 2, 4 users)" in capsys.readouterr().out
    assert recommend_main([str(sweep), "--users", "2", "--max-ttft-p95-ms", "140", "--min-goodput", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "**nf4 @ 2 users**" in out  # nf4: TTFT 120 ms, goodput 1.67 req/s; fp32: TTFT 150 ms
    assert (
        recommend_main([str(sweep), "--users", "2", "--max-p95-ms", "100"]) == 2
    )  # the offline limit is not a serving one
