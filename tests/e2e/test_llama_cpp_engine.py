"""The llama.cpp engine in real sweeps: across engines with quality, and a GGUF file served by
llama-cpp-python's server (engine=llama-cpp-python; llama-server: tests/e2e/test_llama_server.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"
)


def sweep_rows(run_dir: Path) -> dict[str, dict]:
    rows = {}
    for result_file in sorted(run_dir.rglob("result.json")):
        result = json.loads(result_file.read_text())
        rows[result["identity"]["precision"]] = result
    return rows


# About 4 minutes on 2 cores; tests/e2e/test_gguf_llama_cpp.py covers one GGUF job with quality by default.
@pytest.mark.slow
@needs_llama_cpp
def test_a_sweep_across_engines_scores_every_precision_on_the_same_tokens_and_hits_the_gguf_cache(
    run_quantbench, shared_data, tmp_path
):
    args = [
        "-m",
        "model=tiny-llama",
        "precision=fp32,nf4,gguf-q8_0,gguf-q4_0",
        "quality=[ppl,kld]",
        "bench=quick",
        "hardware=cpu",
        "hardware.threads=2",
        f"quality.data_dir={shared_data}",
        "quality.context_tokens=64",
        "quality.stride=48",
        "quality.max_tokens=600",
    ]
    rows = sweep_rows(run_quantbench(args, tmp_path / "first"))
    assert {precision: row["status"] for precision, row in rows.items()} == dict.fromkeys(
        ("fp32", "nf4", "gguf-q8_0", "gguf-q4_0"), "ok"
    )
    metrics = {precision: row["metrics"] for precision, row in rows.items()}
    for precision in ("gguf-q8_0", "gguf-q4_0"):
        assert metrics[precision]["engine"] == "llama.cpp"
    # Set, not only recorded: both engines ran at hardware.threads.
    assert {m["threads"] for m in metrics.values()} == {2}
    # Every precision is scored on the same windows against the same fp32 reference.
    assert len({(m["ppl_n_tokens"], m["kld_n_tokens"]) for m in metrics.values()}) == 1
    assert 0 < metrics["gguf-q8_0"]["kld_mean"] < metrics["gguf-q4_0"]["kld_mean"]
    assert metrics["fp32"]["kld_mean"] == pytest.approx(0, abs=1e-6)
    assert metrics["gguf-q8_0"]["checkpoint_size_gb"] > metrics["gguf-q4_0"]["checkpoint_size_gb"]
    assert metrics["gguf-q8_0"]["bits_per_weight"] > metrics["gguf-q4_0"]["bits_per_weight"]

    again = sweep_rows(run_quantbench([*args[:2], "precision=gguf-q8_0,gguf-q4_0", *args[3:]], tmp_path / "second"))
    assert all(row["status"] == "ok" and row["metrics"]["cache_hit"] is True for row in again.values())


def server_packages_missing() -> bool:
    return any(
        importlib.util.find_spec(name) is None
        for name in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
    )


@pytest.mark.skipif(server_packages_missing(), reason="pip install 'llama-cpp-python[server]==0.3.36'")
def test_gguf_served_by_llama_cpp_python_at_one_user(run_quantbench, tmp_path):
    import polars as pl

    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=llama-cpp-python",
            "model=tiny-llama",
            "precision=gguf-q8_0",
            "hardware=cpu",
            "hardware.threads=2",
            "serve.concurrency=[1]",
            "serve.requests_per_level=3",
            "serve.warmup_requests=1",
            "bench.max_new_tokens=6",
        ],
        tmp_path,
    )
    (result_file,) = sweep.rglob("result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["engine"] == "llama-cpp-python" and metrics["serves_one_request_at_a_time"] is True
    assert metrics["server_command"][metrics["server_command"].index("--model") + 1].endswith("model.gguf")
    assert metrics["gguf_type"] == "q8_0" and metrics["threads"] == 2
    requests = pl.read_parquet(result_file.parent / "requests.parquet")
    assert requests["ok"].to_list() == [True] * 3
    # min_tokens held the end of sequence back: every request was cut by max_tokens.
    assert requests["finish_reason"].to_list() == ["length"] * 3
