"""Served fidelity through real servers on tiny-llama (slow: a real server each; vLLM also under the
`vllm` marker): llama-server's /completion with n_probs, vLLM's prompt_logprobs. The weights served
are tiny-llama's own in float32 (gguf-f32, fp32), so the server's distribution is the reference's up to
each engine's arithmetic: top-1 agrees but where two tokens of the random model are nearly tied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.app import only_job
from test_llama_server import built_llama_server

from quantbench.engines.vllm_env import INSTALL_COMMAND, installed_env

FIDELITY = [
    "serve.fidelity.enabled=true",
    "quality.context_tokens=48",
    "quality.stride=48",
    "quality.max_tokens=512",
    "serve.fidelity.windows=2",
    "serve.fidelity.tokens=6",
    "serve.concurrency=[1,2]",
    "serve.requests_per_level=8",
    "serve.warmup_requests=0",
    "bench.max_new_tokens=8",
    "hardware=cpu",
]


def check_close_to_the_reference(metrics: dict) -> None:
    assert metrics["served_fidelity_unavailable"] is None and metrics["served_fidelity_error_no_load"] is None
    assert metrics["served_fidelity_tokens_no_load"] == 12 and metrics["served_top1_agree_no_load"] >= 90.0
    assert metrics["served_kld_mean_no_load"] < 1e-3 and metrics["served_fidelity_returned_k_min_no_load"] >= 32
    assert metrics["served_fidelity_tokens_under_load"] >= 1 and metrics["served_fidelity_error_under_load"] is None
    assert metrics["levels"][1]["fidelity_measured_at"] == "under load (this level)"


# About 40 s on 2 cores: the GGUF conversion of tiny-llama (cached after the first) and one llama-server.
@pytest.mark.slow
def test_llama_server_scores_the_windows_through_completion_n_probs(run_quantbench, tmp_path):
    built_llama_server()
    sweep = run_quantbench(
        ["-m", "scenario=serve", "engine=llama.cpp", "model=tiny-llama", "precision=gguf-f32", *FIDELITY], tmp_path
    )
    result, _ = only_job(sweep)
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["served_fidelity_protocol"] == "llama-server"
    command = metrics["server_command"]
    # One slot more than the busiest level's users, for the run beside it; a context for a whole window.
    assert command[command.index("--parallel") + 1] == "3" and metrics["llama_server_ctx_per_slot"] >= 48 + 1
    check_close_to_the_reference(metrics)


# About 2 minutes on 2 cores: vLLM compiles the model at every start (tests/e2e/test_vllm_serve.py).
@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_scores_the_windows_through_prompt_logprobs(run_quantbench, tmp_path):
    if installed_env(Path(os.environ["QUANTBENCH_CACHE"])) is None:
        pytest.skip(f"vLLM's environment is not installed: run `{INSTALL_COMMAND}`")
    sweep = run_quantbench(
        ["-m", "scenario=serve", "engine=vllm", "model=tiny-llama", "precision=fp32", *FIDELITY], tmp_path
    )
    result, _ = only_job(sweep)
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["served_fidelity_protocol"] == "vllm"
    command = metrics["server_command"]
    assert command[command.index("--max-logprobs") + 1] == "64"
    check_close_to_the_reference(metrics)
