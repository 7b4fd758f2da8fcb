"""engine=vllm end to end: the skipped row without vLLM's environment (fast), and a real vLLM server
from the environment `quantbench engines install vllm` makes, serving tiny-llama at two levels
(marker `vllm`: `pytest -m vllm tests/e2e/test_vllm_serve.py`; skipped where it is not installed)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.app import only_job

from quantbench.engines.vllm_env import INSTALL_COMMAND, installed_env, pinned_version


# slow (~15 s, a sweep): tests/engines/test_vllm_env.py checks the same reasons without one
@pytest.mark.slow
def test_without_vllm_the_row_is_skipped_naming_the_install_command(run_quantbench, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `vllm` on PATH either
    empty_cache = tmp_path / "empty-cache"
    sweep = run_quantbench(
        ["-m", "scenario=serve", "engine=vllm", "model=tiny-llama", "precision=fp32", f"cache_dir={empty_cache}"],
        tmp_path,
    )
    result = only_job(sweep)[0]
    assert result["status"] == "skipped"
    assert INSTALL_COMMAND in result["reason"] and "engine.command" in result["reason"]
    assert not (empty_cache / "models").exists()  # skipped before any model work


# slow (~15 s, a sweep): tests/engines/test_vllm_env.py checks the same reasons without one
@pytest.mark.slow
def test_what_vllms_cpu_build_refuses_is_skipped_before_any_model_work(run_quantbench, tmp_path):
    empty_cache = tmp_path / "empty-cache"
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=vllm",
            f"engine.command={sys.executable}",  # an executable that exists: the precisions decide
            "model=tiny-llama",
            "precision=nf4,int8,gptq-8bit",
            "hardware=cpu",
            f"cache_dir={empty_cache}",
        ],
        tmp_path,
    )
    results = [json.loads(path.read_text()) for path in sweep.rglob("result.json")]
    assert len(results) == 3 and all(result["status"] == "skipped" for result in results)
    reasons = {result["identity"]["precision"]: result["reason"] for result in results}
    assert "Unknown quantization method: bitsandbytes" in reasons["nf4"] and "bitsandbytes" in reasons["int8"]
    assert "CPUWNA16" in reasons["gptq-8bit"]
    assert not (empty_cache / "models").exists() and not (empty_cache / "quantized").exists()


# About 2 minutes on 2 cores (119 s, load average 1.5): vLLM's server compiles the model with
# torch.compile at every start (vLLM 0.32.0 fails to load its saved compile cache here:
# docs/results/vllm_cpu.md), then 10 short requests.
@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_serves_tiny_llama_at_two_levels(run_quantbench, tmp_path):
    import polars as pl

    if installed_env(Path(os.environ["QUANTBENCH_CACHE"])) is None:
        pytest.skip(f"vLLM's environment is not installed: run `{INSTALL_COMMAND}`")
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=vllm",
            "model=tiny-llama",
            "precision=fp32",
            "hardware=cpu",
            "serve.concurrency=[1,2]",
            "serve.requests_per_level=4",
            "serve.warmup_requests=1",
            "bench.max_new_tokens=8",
        ],
        tmp_path,
    )
    result = only_job(sweep)[0]
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["vllm_version"] == pinned_version() and metrics["vllm_executable_from"] == "quantbench cache"
    command = metrics["server_command"]
    assert command[0].endswith("/bin/vllm") and command[1] == "serve"
    # The KV cache is the recorded size, as vLLM's own log says (cpu_worker.py: "Explicitly set ...").
    (server_log,) = sweep.rglob("server.log")
    assert metrics["kv_cache_space_gb"] == 1 and "Explicitly set (1.0/" in server_log.read_text()
    assert metrics["prefix_caching"] == "off" and "--no-enable-prefix-caching" in command
    # vLLM's ignore_eos was accepted and every request ran to max_tokens, counted from the usage it sent.
    assert metrics["eos_ignored"] is True and "ignore_eos" in metrics["request_fields"]
    rows = pl.read_parquet(sweep / "summary.parquet").sort("concurrency")
    assert rows["concurrency"].to_list() == [1, 2] and rows["n_failed_requests"].to_list() == [0, 0]
    assert rows["status"].to_list() == ["ok", "ok"] and all(rows["vllm_version"] == pinned_version())
    assert all(value > 0 for value in rows["output_tokens_per_s"])
