"""Server-side metrics end to end: a serving sweep against the stand-in serving /metrics with live
counters (vLLM's names) records server_metrics.parquet, the per-level server_* columns and the
report's table and figure; llama-server's real /metrics (slow: a real server). A server without
/metrics: tests/e2e/test_serve_lifecycle.py (the stand-in's default) and tests/loadgen/test_server_metrics.py."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from support import STANDIN_SERVE
from support.app import only_job

from quantbench.jobdir import SERVER_METRICS_FILE

REQUESTS = 6
STANDIN_PROMPT_TOKENS = 7  # what the stand-in counts per request (tests/support/serve_standin.py)


def test_a_sweep_level_gets_the_servers_own_counts(run_quantbench, tmp_path):
    sweep = run_quantbench(
        [
            "-m",
            *STANDIN_SERVE,
            "serve.concurrency=[1,3]",
            f"serve.requests_per_level={REQUESTS}",
            "serve.metrics_interval_s=0.02",
            "engine.args=[--standin-metrics,live,--standin-delay-ms,20]",
        ],
        tmp_path,
    )
    result, job_dir = only_job(sweep)
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["server_metrics_source"].endswith("/metrics, vLLM names (vllm:*)")
    assert metrics["server_metrics_reason"] is None and metrics["server_metrics_interval_s"] == 0.02
    rows = pl.read_parquet(sweep / "summary.parquet").sort("concurrency")
    for row in rows.iter_rows(named=True):
        # The counters cover the measured requests exactly: not the warm-up, not the probe.
        assert row["server_prompt_tokens"] == REQUESTS * STANDIN_PROMPT_TOKENS
        assert row["server_generation_tokens"] == REQUESTS * 4 and row["server_preemptions"] == 0
        assert row["server_prefix_cache_queried_tokens"] == row["server_prompt_tokens"]
        assert 0 <= row["server_prefix_cache_hit_rate"] <= 1
        assert 1 <= row["server_requests_running_max"] <= row["concurrency"]
        # The stand-in's KV-cache usage is its running requests over 8 slots, read in the same scrape.
        assert row["server_kv_cache_usage_max"] == row["server_requests_running_max"] / 8
        assert row["server_metrics_scrapes"] >= 1 and row["server_metrics_note"] is None
    samples = pl.read_parquet(job_dir / SERVER_METRICS_FILE)
    assert set(samples.get_column("level").drop_nulls()) == {0, 1}
    assert {"probe", "level start", "measured start", "interval", "end"} <= set(samples.get_column("trigger"))
    assert samples.get_column("error").null_count() == samples.height
    assert (sweep / "figures" / "serve_server_metrics.png").is_file()
    report = (sweep / "report.md").read_text()
    assert "What the servers reported (/metrics)" in report and "serve_server_metrics.png" in report


# slow (a real llama-server on tiny-llama's GGUF, ~30 s on 2 cores)
@pytest.mark.slow
def test_llama_server_metrics_per_level(run_quantbench, tmp_path):
    from quantbench.gguf.tools import INSTALL_COMMAND, ToolsUnavailable, tool_path

    try:
        tool_path(Path(os.environ["QUANTBENCH_CACHE"]), "llama-server")
    except ToolsUnavailable as error:
        pytest.skip(f"llama.cpp's tools are not built: run `{INSTALL_COMMAND}` ({error})")
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=llama.cpp",
            "model=tiny-llama",
            "precision=gguf-q8_0",
            "hardware=cpu",
            "hardware.threads=2",
            "serve.concurrency=[1,2]",
            "serve.requests_per_level=4",
            "serve.warmup_requests=1",
            "bench.max_new_tokens=8",
            "serve.metrics_interval_s=0.1",
        ],
        tmp_path,
    )
    result, job_dir = only_job(sweep)
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert "--metrics" in metrics["server_command"]
    assert metrics["server_metrics_source"].endswith("llama-server names (llamacpp:*)")
    # This llama.cpp build has neither a KV-cache usage nor a preemption metric.
    assert metrics["server_metrics_not_reported"] == "kv_cache_usage, preemptions"
    requests = pl.read_parquet(job_dir / "requests.parquet")
    for level in metrics["levels"]:
        measured = requests.filter(pl.col("concurrency") == level["concurrency"])
        assert level["server_generation_tokens"] == measured.get_column("output_tokens").sum() == 4 * 8
        # Prefix caching is off (--no-cache-prompt): every prompt token is computed.
        assert level["server_prompt_tokens"] == measured.get_column("input_tokens").sum()
        assert level["server_prefix_cache_hit_rate"] == 0
        assert 1 <= level["server_busy_slots_per_decode"] <= level["concurrency"]
    assert metrics["server_metrics_scrape_ms_p50"] > 0 and metrics["server_metrics_failed_scrapes_in_job"] == 0
