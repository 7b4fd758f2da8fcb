"""Fidelity runs (quantbench/loadgen/fidelity_probe.py) against stand-in servers, without a job: one
whose outputs are the real tiny-llama's plus noise (the metric moves), one that has no /completion
(the server's answer is the run's error), and a run beside a level stopped early (it keeps what it
scored, sends nothing after)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from support.serve_standin import serving_in_thread

from quantbench.engines.openai import Endpoint
from quantbench.loadgen.fidelity_probe import Probe, ProbeBeside
from quantbench.loadgen.fidelity_protocols import WindowTask
from quantbench.loadgen.server import free_port
from quantbench.quality.fidelity import top_k_reference
from quantbench.quality.served import ServedTopK, served_fidelity_metrics

WINDOW = list(range(5, 37))  # token ids of one window
POSITIONS = list(range(24, 32))  # its last 8 tokens, each predicted from those before it


@pytest.fixture
def tiny_llama(compose_config):
    from quantbench.config import registry
    from quantbench.models.source import resolve_model

    cfg = compose_config(["model=tiny-llama"])
    return resolve_model(cfg.model, registry.families().get(cfg.model.family), Path(cfg.cache_dir)).load_path


def reference_rows(weights: str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32).eval()
    with torch.inference_mode():
        log_probs = torch.log_softmax(model(input_ids=torch.tensor([WINDOW])).logits[0].float(), -1)
    # row t predicts token t + 1: the scored tokens' rows are POSITIONS - 1
    rows = log_probs[[p - 1 for p in POSITIONS]]
    return top_k_reference(rows, 32, torch.tensor([WINDOW[p] for p in POSITIONS]))


def probe(url: str) -> Probe:
    return Probe("llama-server", [WindowTask(0, WINDOW, POSITIONS)], Endpoint(url, model=None), 64, 30.0)


def test_noise_on_the_servers_logits_moves_top1_and_kl(tiny_llama):
    reference = reference_rows(tiny_llama)
    args = ["serve", tiny_llama, "--port", str(free_port()), "--standin-logprobs", "--standin-logit-noise", "3"]
    with serving_in_thread(args) as url:
        run = probe(url).run_once()
    assert run.error is None and run.n_tokens == len(POSITIONS) and run.n_requests == len(POSITIONS)
    metrics = served_fidelity_metrics([(reference, ServedTopK.from_rows(run.scored[0].top_k))], 0.95)
    assert metrics["served_top1_agree"] < 100.0 and metrics["served_kld_mean"] > 0.01

    with serving_in_thread([*args[:4], "--standin-logprobs", "--standin-delay-ms", "1"]) as url:
        beside = ProbeBeside(probe(url))
        beside.start()
        time.sleep(0.05)
        stopped = beside.stop()
        assert not beside.running
    assert stopped.error is None and 1 <= stopped.n_tokens <= len(POSITIONS)
    exact = served_fidelity_metrics(
        [(reference.rows(0, stopped.n_tokens), ServedTopK.from_rows(stopped.scored[0].top_k))], 0.95
    )
    assert exact["served_top1_agree"] == 100.0 and exact["served_kld_mean"] < 1e-6  # no noise: the reference


def test_a_server_without_the_endpoint_ends_the_run_with_its_answer(standin):
    endpoint = standin()  # the plain stand-in: no /completion
    run = Probe("llama-server", [WindowTask(0, WINDOW, POSITIONS)], endpoint, 64, 30.0).run_once()
    assert run.n_tokens == 0 and run.error.startswith(f"POST {endpoint.base_url}/completion: HTTP 404")
    assert "no route POST /completion" in run.error
