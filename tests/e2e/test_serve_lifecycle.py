"""The serving scenario end to end against the stand-in server (tests/support/serve_standin.py, started
through engine.command exactly as a real engine's executable): results, load modes, and every
way a server or an endpoint can fail, none of which may leave a server running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from support import ROOT, STANDIN, STANDIN_SERVE

BASE = STANDIN_SERVE


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(path.parent for path in sweep.rglob("result.json"))


def result(job_dir: Path) -> dict:
    return json.loads((job_dir / "result.json").read_text())


def standin_pid(job_dir: Path) -> int:
    for line in (job_dir / "server.log").read_text().splitlines():
        if line.startswith("standin pid "):
            return int(line.split()[-1])
    raise AssertionError(f"no stand-in pid in {job_dir / 'server.log'}")


def assert_gone(pid: int) -> None:
    for _ in range(50):  # the kernel may take a moment to deliver the last signal
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"server process {pid} is still running")


def test_closed_loop_sweep_writes_every_request_and_a_row_per_level(run_quantbench, tmp_path):
    sweep = run_quantbench(["-m", *BASE, "serve.concurrency=[1,3]", "serve.requests_per_level=6"], tmp_path)
    [job] = job_dirs(sweep)
    data = result(job)
    assert data["status"] == "ok", data["reason"]
    metrics = data["metrics"]
    assert metrics["server_command"][:2] == [sys.executable, str(STANDIN)]
    assert "--continuous-batching" in metrics["server_command"] and metrics["eos_ignored"] is True
    requests = pl.read_parquet(job / "requests.parquet")
    assert requests.height == 12 and requests["ok"].all()
    assert requests.group_by("concurrency").len().sort("concurrency")["len"].to_list() == [6, 6]
    assert requests["output_tokens"].to_list() == [4] * 12 and set(requests["tokens_from"]) == {"usage"}
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary["concurrency"].to_list() == [1, 3]
    assert summary["scenario"].to_list() == ["serve", "serve"] and summary["engine"].to_list() == ["transformers"] * 2
    for column in (
        "n_requests",
        "n_failed_requests",
        "request_throughput_per_s",
        "output_tokens_per_s",
        "ttft_p50_ms",
        "ttft_p95_ms",
        "ttft_p99_ms",
        "tpot_p50_ms",
        "itl_p50_ms",
        "itl_p95_ms",
        "e2e_p50_ms",
        "e2e_p95_ms",
        "e2e_p98_ms",
        "e2e_p99_ms",
        "goodput_per_s",
        "slo_attainment",
    ):
        assert column in summary.columns, column
    assert summary["n_requests"].to_list() == [6, 6] and summary["n_failed_requests"].to_list() == [0, 0]
    assert_gone(standin_pid(job))
    # The stand-in has no /metrics (404, as transformers serve): null server columns that say why.
    assert summary["server_prompt_tokens"].null_count() == 2
    assert all("/metrics answered HTTP 404" in note for note in summary["server_metrics_note"])


def test_poisson_level_with_an_slo_and_no_usage_from_the_server(run_quantbench, tmp_path):
    sweep = run_quantbench(
        [
            "-m",
            *BASE,
            "serve.request_rate=[40]",
            "serve.requests_per_level=5",
            "serve.slo.ttft_ms=60000",
            "engine.args=[--standin-no-usage]",
        ],
        tmp_path,
    )
    [job] = job_dirs(sweep)
    [level] = result(job)["metrics"]["levels"]
    assert level["request_rate"] == 40.0 and level["concurrency"] is None
    assert level["n_requests"] == 5 and level["slo_attainment"] == 1.0
    requests = pl.read_parquet(job / "requests.parquet")
    # No usage: each request stopped for its length, so it generated its max_tokens.
    assert set(requests["tokens_from"]) == {"length"} and requests["output_tokens"].to_list() == [4] * 5
    assert requests["sent_s"].is_sorted()


def test_request_errors_are_counted_not_dropped(run_quantbench, tmp_path):
    # Two warm-up requests, then six measured: the server fails its 3rd and 6th overall.
    sweep = run_quantbench(
        ["-m", *BASE, "serve.requests_per_level=6", "engine.args=[--standin-fail-every,3]"], tmp_path
    )
    [job] = job_dirs(sweep)
    data = result(job)
    assert data["status"] == "ok"
    [level] = data["metrics"]["levels"]
    assert level["n_requests"] == 6 and level["n_failed_requests"] == 2
    errors = pl.read_parquet(job / "requests.parquet").filter(~pl.col("ok"))["error"].to_list()
    assert len(errors) == 2 and all(error.startswith("HTTP 500") for error in errors)


def test_a_server_that_crashes_mid_load_is_a_failed_row_quoting_its_log(run_quantbench, tmp_path):
    sweep = run_quantbench(
        ["-m", *BASE, "serve.requests_per_level=8", "engine.args=[--standin-crash-after,4]"], tmp_path
    )
    [job] = job_dirs(sweep)
    data = result(job)
    assert data["status"] == "failed"
    assert "exited with code 3" in data["reason"] and "crashing on request 5" in data["reason"]
    requests = pl.read_parquet(job / "requests.parquet")  # what was measured before the crash is kept
    assert requests.height >= 1 and not requests["ok"].all()
    assert_gone(standin_pid(job))


def test_a_server_that_never_becomes_healthy_is_a_failed_row(run_quantbench, tmp_path):
    sweep = run_quantbench(
        ["-m", *BASE, "serve.startup_timeout_s=3", "engine.args=[--standin-never-healthy]"], tmp_path
    )
    [job] = job_dirs(sweep)
    data = result(job)
    assert data["status"] == "failed"
    assert (
        "did not answer" in data["reason"]
        and "serve.startup_timeout_s" in data["reason"]
        and "standin pid" in data["reason"]
    )
    assert_gone(standin_pid(job))


def test_an_executable_that_is_missing_is_a_skipped_row(run_quantbench, tmp_path):
    sweep = run_quantbench(["-m", *BASE[:-2], "engine.command=/nonexistent/serve", "bench.max_new_tokens=4"], tmp_path)
    [job] = job_dirs(sweep)
    assert result(job)["status"] == "skipped" and "/nonexistent/serve" in result(job)["reason"]


def test_an_endpoint_that_refuses_connections_is_a_failed_row(run_quantbench, tmp_path):
    sweep = run_quantbench(
        ["-m", "scenario=serve", "engine=openai", "engine.url=http://127.0.0.1:9", "model=tiny-llama"], tmp_path
    )
    [job] = job_dirs(sweep)
    data = result(job)
    assert data["status"] == "failed" and "connection refused" in data["reason"] and "127.0.0.1:9" in data["reason"]
    assert "cannot reach engine.url" in data["reason"]  # found before any model work, not by the load
    summary = pl.read_parquet(sweep / "summary.parquet")
    assert summary["engine"].to_list() == ["openai"] and summary["status"].to_list() == ["failed"]


@pytest.fixture
def keyed_standin(tmp_path):
    """A stand-in already running (as a user's own endpoint would be), requiring an API key."""
    from quantbench.loadgen.server import free_port, wait_healthy

    port = free_port()
    environment = {**os.environ, "QB_TEST_SERVE_KEY": "sekret-key-4711"}
    log = open(tmp_path / "endpoint.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            str(STANDIN),
            "--port",
            str(port),
            "--served-model-name",
            "remote-model",
            "--standin-api-key-env",
            "QB_TEST_SERVE_KEY",
        ],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", 60.0)
        yield port
    finally:
        process.kill()
        process.wait()
        log.close()


def test_an_endpoint_key_is_read_from_the_environment_and_written_nowhere(
    run_quantbench, tmp_path, monkeypatch, keyed_standin
):
    monkeypatch.setenv("QB_TEST_SERVE_KEY", "sekret-key-4711")
    out = tmp_path / "out"
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=openai",
            f"engine.url=http://127.0.0.1:{keyed_standin}/v1",
            "engine.api_key_env=QB_TEST_SERVE_KEY",
            "model=tiny-llama",
            "serve.requests_per_level=3",
            "bench.max_new_tokens=3",
        ],
        out,
    )
    [job] = job_dirs(sweep)
    data = result(job)
    assert data["status"] == "ok", data["reason"]
    assert data["config"]["engine"]["api_key_env"] == "QB_TEST_SERVE_KEY"
    for path in sweep.rglob("*"):
        if path.is_file():
            assert b"sekret-key-4711" not in path.read_bytes(), path
    monkeypatch.delenv("QB_TEST_SERVE_KEY")
    sweep = run_quantbench(
        [
            "-m",
            "scenario=serve",
            "engine=openai",
            f"engine.url=http://127.0.0.1:{keyed_standin}",
            "engine.api_key_env=QB_TEST_SERVE_KEY",
            "model=tiny-llama",
        ],
        tmp_path / "unset",
    )
    [job] = job_dirs(sweep)
    assert result(job)["status"] == "skipped" and "QB_TEST_SERVE_KEY" in result(job)["reason"]


# In process, ~23 s on 2 cores, is the slow one: isolation=process, the default, runs by default.
@pytest.mark.parametrize("isolation", [pytest.param("none", marks=pytest.mark.slow), "process"])
def test_ctrl_c_during_a_serving_job_leaves_no_server(tmp_path, isolation):
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "-m",
        "quantbench",
        "-m",
        *BASE,
        "serve.requests_per_level=200",
        f"bench.isolation={isolation}",
        "engine.args=[--standin-delay-ms,200]",
        f"hydra.sweep.dir={sweep}",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600  # a loaded 2-core machine takes minutes to import and compose
        log = sweep / "0" / "server.log"
        while not (log.is_file() and "standin pid" in log.read_text()):
            if process.poll() is not None:
                raise AssertionError(process.stdout.read().decode()[-3000:])
            assert time.monotonic() < deadline, "the serving job did not start its server in time"
            time.sleep(0.2)
        pid = standin_pid(sweep / "0")
        time.sleep(3.0)  # healthy, warm-up and measured requests in flight
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_gone(pid)
