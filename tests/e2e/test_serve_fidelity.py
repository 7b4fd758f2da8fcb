"""Served fidelity end to end (serve.fidelity): a serving job on tiny-llama scores the offline KL
scorer's windows through a server at no load and beside a load level, against the cached fp32
reference, and turns it into quality-adjusted goodput; a server without log-probabilities, or one
that refuses the requests (tests/loadgen/test_served_fidelity_runs.py), leaves the job ok with the
reason recorded.

The server with log-probabilities is the stand-in (tests/support/serve_standin.py --standin-logprobs)
answering llama-server's /completion from the real tiny-llama weights, served from a thread of the
test's process (its imports are already paid) and reached as engine=openai."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from support import STANDIN_SERVE
from support.serve_standin import serving_in_thread

from quantbench.loadgen.server import free_port

# Small windows of WikiText-2, so that the reference and the run take a fraction of a second.
WINDOWS = [
    "quality.context_tokens=48",
    "quality.stride=48",
    "quality.max_tokens=512",
    "serve.fidelity.windows=2",
    "serve.fidelity.tokens=6",
]


def only_result(sweep: Path) -> tuple[Path, dict]:
    [path] = sorted(sweep.rglob("result.json"))
    return path.parent, json.loads(path.read_text())


@pytest.fixture
def tiny_llama_weights(compose_config) -> str:
    from quantbench.config import registry
    from quantbench.models.source import resolve_model

    cfg = compose_config(["model=tiny-llama"])
    return resolve_model(cfg.model, registry.families().get(cfg.model.family), Path(cfg.cache_dir)).load_path


def endpoint_job(url: str, *extra: str) -> list[str]:
    return [
        "-m",
        "scenario=serve",
        "engine=openai",
        f"engine.url={url}",
        "model=tiny-llama",
        "precision=fp32",
        "bench.max_new_tokens=4",
        "serve.fidelity.enabled=true",
        "serve.fidelity.protocol=llama-server",
        *WINDOWS,
        *extra,
    ]


def test_fp32_agrees_fully_at_no_load_and_under_load(run_quantbench, tiny_llama_weights, tmp_path):
    port = free_port()
    args = ["serve", tiny_llama_weights, "--port", str(port), "--standin-logprobs", "--standin-delay-ms", "25"]
    with serving_in_thread(args) as url:
        sweep = run_quantbench(
            endpoint_job(
                url,
                "serve.concurrency=[1,2]",
                "serve.requests_per_level=12",
                "serve.fidelity_min_top1=99",
            ),
            tmp_path / "same",
        )
    job, data = only_result(sweep)
    assert data["status"] == "ok", data["reason"]
    metrics = data["metrics"]
    assert metrics["served_fidelity_protocol"] == "llama-server" and metrics["served_fidelity_unavailable"] is None
    assert metrics["served_fidelity_reference"] == "fp32" and metrics["served_fidelity_top_k"] == 64
    # The same weights as the reference: every top-1 agrees, the divergence is rounding.
    assert metrics["served_top1_agree_no_load"] == 100.0 and metrics["served_fidelity_tokens_no_load"] == 12
    assert metrics["served_kld_mean_no_load"] < 1e-6 and metrics["served_fidelity_requests_no_load"] == 12
    assert metrics["served_fidelity_tokens_under_load"] >= 1 and metrics["served_top1_agree_under_load"] == 100.0
    assert metrics["served_fidelity_error_no_load"] is None and metrics["served_fidelity_under_load_level"] == 1
    no_load, loaded = metrics["levels"]
    assert no_load["fidelity_measured_at"] == "no load" and no_load["served_fidelity_tokens"] == 12
    # The run beside level 1 started after its warm-up, with its measured requests.
    assert loaded["fidelity_measured_at"] == "under load (this level)" and 0.5 < loaded["served_fidelity_overlap"] <= 1
    for level in (no_load, loaded):  # no serve.slo: every successful request counts
        assert level["quality_goodput_per_s"] == level["request_throughput_per_s"] > 0
        assert level["fidelity_meets_limits"] is True
    tokens = pl.read_parquet(job / "served_fidelity.parquet")
    assert tokens.filter(pl.col("phase") == "no_load").height == 12
    assert (tokens["served_top1"] == tokens["reference_top1"]).all() and tokens["returned_k"].min() == 64
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary["served_top1_agree"].to_list() == [100.0, 100.0]


def test_a_server_without_log_probabilities_records_why_and_the_job_stays_ok(run_quantbench, tmp_path):
    # transformers serve offers none: serve.fidelity.protocol=auto knows it before any request.
    sweep = run_quantbench(
        [
            "-m",
            *STANDIN_SERVE,
            "serve.requests_per_level=2",
            "serve.fidelity.enabled=true",
            "serve.fidelity_min_top1=90",
            *WINDOWS,
        ],
        tmp_path,
    )
    job, data = only_result(sweep)
    assert data["status"] == "ok"
    metrics = data["metrics"]
    assert "`transformers serve` returns no log-probabilities" in metrics["served_fidelity_unavailable"]
    assert metrics["served_fidelity_protocol"] is None and "served_top1_agree_no_load" not in metrics
    [level] = metrics["levels"]
    assert level["served_top1_agree"] is None and level["fidelity_measured_at"] is None
    assert level["quality_goodput_per_s"] is None and level["fidelity_meets_limits"] is None
    assert level["n_failed_requests"] == 0 and not (job / "served_fidelity.parquet").exists()
