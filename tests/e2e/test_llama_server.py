"""engine=llama.cpp serving with llama.cpp's own llama-server, built by `quantbench engines install
llama.cpp` (tests/gguf/test_tools.py tests the install on a stand-in tree): a real server on
tiny-llama's GGUF file at two levels, and the skipped row when the build is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.app import only_job

from quantbench.gguf.tools import INSTALL_COMMAND, TOOLS_ENV, ToolsUnavailable, tool_path

LLAMA_SERVER_JOB = [
    "-m",
    "scenario=serve",
    "engine=llama.cpp",
    "model=tiny-llama",
    "precision=gguf-q8_0",
    "hardware=cpu",
]


def test_a_missing_build_is_a_skipped_row_naming_the_install_command(run_quantbench, tmp_path, monkeypatch):
    monkeypatch.delenv(TOOLS_ENV, raising=False)
    sweep = run_quantbench([*LLAMA_SERVER_JOB, f"cache_dir={tmp_path / 'empty-cache'}"], tmp_path)
    result, _ = only_job(sweep)
    assert result["status"] == "skipped"
    assert INSTALL_COMMAND in result["reason"] and "llama-server" in result["reason"]
    # Skipped before any model work: nothing was materialised or converted in the empty cache.
    assert not (tmp_path / "empty-cache" / "models").exists()


def built_llama_server() -> Path:
    """The tools in the test cache (linked from the user's, tests/conftest.py) or QUANTBENCH_LLAMA_CPP_TOOLS."""
    try:
        return tool_path(Path(os.environ["QUANTBENCH_CACHE"]), "llama-server")
    except ToolsUnavailable as error:
        pytest.skip(f"llama.cpp's tools are not built: run `{INSTALL_COMMAND}` ({error})")


# slow (31-53 s on 2 cores): the issue puts it behind `slow`, the build it needs being slow (14 min);
# .ci/run builds the tools and runs the slow tier after the default one.
@pytest.mark.slow
def test_llama_server_serves_tiny_llama_at_two_levels_with_a_slot_per_user(run_quantbench, tmp_path):
    import polars as pl

    server = built_llama_server()
    sweep = run_quantbench(
        [
            *LLAMA_SERVER_JOB,
            "hardware.threads=2",
            "serve.concurrency=[1,2]",
            "serve.requests_per_level=4",
            "serve.warmup_requests=1",
            "bench.max_new_tokens=8",
        ],
        tmp_path,
    )
    result, job_dir = only_job(sweep)
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    command = metrics["server_command"]
    assert metrics["engine"] == "llama.cpp" and command[0] == str(server)
    assert command[command.index("--parallel") + 1] == "2" and "--cont-batching" in command
    assert command[command.index("--model") + 1].endswith("model.gguf") and metrics["gguf_type"] == "q8_0"
    per_slot = metrics["llama_server_ctx_per_slot"]
    assert metrics["llama_server_slots"] == 2 and per_slot % 256 == 0
    assert command[command.index("--ctx-size") + 1] == str(2 * per_slot) == str(metrics["llama_server_ctx_size"])
    assert command[command.index("--threads") + 1] == "2" and metrics["threads"] == 2
    assert metrics["llama_cpp_build"].startswith("version:") and metrics["prefix_caching"].startswith("off")
    assert "ignore_eos" in metrics["request_fields"].split(",") and metrics["usage_in_stream"] is True
    assert [level["concurrency"] for level in metrics["levels"]] == [1, 2]
    assert all(level["n_requests"] == 4 and level["output_tokens_per_s"] > 0 for level in metrics["levels"])
    # ignore_eos held the end of sequence back: every request ran to max_tokens.
    assert metrics["eos_ignored"] is True and metrics["n_failed_requests"] == 0
    requests = pl.read_parquet(job_dir / "requests.parquet")
    assert requests["ok"].to_list() == [True] * 8
    assert set(requests["output_tokens"].to_list()) == {8}
