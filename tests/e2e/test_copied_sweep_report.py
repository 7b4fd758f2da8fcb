"""A real job records what the analysis needs (hardware facts, the KV-cache size), and a report is
built from a copied sweep directory alone, with the model cache gone and nothing measured at report time."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from support import TINY_LLAMA_KV_BYTES_FP32

from quantbench.measure import hardware_facts as hardware

pytestmark = pytest.mark.usefixtures("fresh_hardware_table")


def test_a_job_records_what_the_analysis_needs_and_a_copied_sweep_reports_without_the_cache(
    tmp_path, run_quantbench, monkeypatch
):
    from quantbench.report import write_report

    cache = tmp_path / "private-cache"
    sweep = run_quantbench(
        [
            "-m",
            "model=tiny-llama",
            "bench=quick",
            "precision=fp32,bf16",
            "batch=1",
            f"cache_dir={cache}",
            "analysis.report_at_end=false",
        ],
        tmp_path / "made",
    )
    result = json.loads((sweep / "0" / "result.json").read_text())
    metrics = result["metrics"]
    assert metrics["activation_dtype"] == "float32" and metrics["kv_cache_bytes_per_token"] == TINY_LLAMA_KV_BYTES_FP32
    assert metrics["hardware_option"] == "cpu" and metrics["memory_bandwidth_gb_s"] > 0
    assert "measured on the machine that ran the job" in metrics["bandwidth_source"]
    assert metrics["price_per_hour_usd"] > 0 and "core-hour" in metrics["price_source"]
    assert "ttft_p50_ms" in metrics and "tpot_p50_ms" in metrics and "ttft_ms" not in metrics

    # Elsewhere, with the model cache gone, and nothing allowed to measure this machine.
    copied = tmp_path / "elsewhere" / "sweep"
    shutil.copytree(sweep, copied)
    shutil.rmtree(sweep)
    shutil.rmtree(cache)
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("QUANTBENCH_CACHE", str(tmp_path / "no-such-cache"))

    def no_measuring(*args, **kwargs):
        raise AssertionError("the report measured this machine")

    monkeypatch.setattr(hardware, "measure_copy_bandwidth_gb_s", no_measuring)
    monkeypatch.setattr(hardware, "cpu_copy_bandwidth_gb_s", no_measuring)
    files = write_report(copied)
    markdown = files.markdown.read_text()
    roofline = markdown.split("## Roofline", 1)[1].split("\n## ", 1)[0]
    assert "KV cache not counted" not in roofline and "no memory bandwidth" not in roofline
    assert "measured on the machine that ran the job" in markdown
    summary = pl.read_parquet(copied / "summary.parquet")
    kv_bytes = dict(summary.select("precision", "kv_cache_bytes_per_token").iter_rows())
    assert kv_bytes == {"fp32": TINY_LLAMA_KV_BYTES_FP32, "bf16": TINY_LLAMA_KV_BYTES_FP32 // 2}
    assert not cache.exists()
