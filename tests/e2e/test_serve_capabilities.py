"""Server capabilities in real serving sweeps against the stand-in (tests/support/serve_standin.py):
output tokens counted from usage or the tokenizer, extra_body fields a server refuses dropped, and a
server killed for memory named as such (the probe itself: tests/loadgen/test_capabilities.py)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from support import STANDIN_SERVE
from support.app import only_job

BASE = [*STANDIN_SERVE, "serve.requests_per_level=4", "serve.concurrency=[2]"]


def only_job_requests(sweep: Path) -> tuple[dict, pl.DataFrame]:
    result, job = only_job(sweep)
    return result, pl.read_parquet(job / "requests.parquet")


@pytest.mark.parametrize(
    "behaviour",
    [
        ["--standin-refuse", "stream_options", "--standin-usage", "always"],  # refuses the field, sends usage anyway
        ["--standin-usage", "on-request"],  # transformers serve >= 5.25
    ],
)
def test_the_transformers_engine_counts_usage_either_way(run_quantbench, tmp_path, behaviour):
    sweep = run_quantbench(["-m", *BASE, f"engine.args=[{','.join(behaviour)}]"], tmp_path)
    data, requests = only_job_requests(sweep)
    assert data["status"] == "ok", data["reason"]
    assert requests["output_tokens"].to_list() == [4] * 4 and set(requests["tokens_from"]) == {"usage"}
    metrics = data["metrics"]
    assert metrics["usage_in_stream"] is True and metrics["eos_ignored"] is True
    assert metrics["stream_options_accepted"] is ("--standin-refuse" not in behaviour)
    assert "generation_config" in metrics["server_capabilities"]["accepted_fields"]
    assert metrics["kv_cache_memory_fraction"] == 0.2
    command = metrics["server_command"]
    assert command[command.index("--cb-max-memory-percent") + 1] == "0.2"
    [level] = metrics["levels"]
    assert level["output_tokens_from"] == "usage" and level["n_output_tokens_from_tokenizer"] == 0


def test_a_server_that_ends_early_without_usage_is_counted_by_the_tokenizer_and_reported(run_quantbench, tmp_path):
    # No usage, and the end-of-sequence field refused: requests stop early, their text is counted.
    args = "[--standin-usage,never,--standin-refuse,generation_config,--standin-eos-after,2]"
    sweep = run_quantbench(["-m", *BASE, f"engine.args={args}"], tmp_path)
    data, requests = only_job_requests(sweep)
    assert data["status"] == "ok", data["reason"]
    assert set(requests["tokens_from"]) == {"tokenizer"} and set(requests["finish_reason"]) == {"stop"}
    metrics = data["metrics"]
    assert metrics["eos_ignored"] is False and "generation_config: HTTP 422" in metrics["refused_request_fields"]
    assert metrics["levels"][0]["n_output_tokens_from_tokenizer"] == 4
    assert (
        "fp32 at concurrency 2: 4 requests' output tokens were counted with the model's tokenizer"
        in (sweep / "report.md").read_text()
    )


def test_an_endpoint_takes_extra_body_with_any_keys_and_drops_what_it_refuses(run_quantbench, tmp_path, standin):
    endpoint = standin("--standin-refuse", "ignore_eos", "--standin-usage", "on-request")
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=openai",
            f"engine.url={endpoint.base_url}",
            "model=tiny-llama",
            "engine.extra_body={ignore_eos: true, min_tokens: 3}",
            "serve.requests_per_level=3",
            "bench.max_new_tokens=3",
        ],
        tmp_path,
    )
    data, requests = only_job_requests(sweep)
    assert data["status"] == "ok", data["reason"]
    metrics = data["metrics"]
    assert (
        metrics["request_fields"] == "stream_options,min_tokens"
        and "ignore_eos: HTTP 422" in metrics["refused_request_fields"]
    )
    # What the responses show: every request ran to max_tokens, whichever field held the end back.
    assert metrics["eos_ignored"] is True and set(requests["tokens_from"]) == {"usage"}


def test_a_server_killed_for_memory_says_so_and_names_its_budget(run_quantbench, tmp_path):
    sweep = run_quantbench(
        ["-m", *BASE, "engine.args=[--standin-kill-self]", "engine.kv_cache_memory_fraction=0.3"], tmp_path
    )
    [job] = sorted(path.parent for path in sweep.rglob("result.json"))
    data = json.loads((job / "result.json").read_text())
    assert data["status"] == "failed"
    assert "killed by SIGKILL" in data["reason"] and "out of memory" in data["reason"]
    assert "engine.kv_cache_memory_fraction=0.3" in data["reason"]
