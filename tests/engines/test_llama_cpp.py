"""The llama.cpp engine among the others: which measurement a precision reaches, and the server
command with the job's threads (sweeps across engines: tests/e2e/test_llama_cpp_engine.py)."""

from __future__ import annotations

import pytest

from quantbench.runtime.device import resolve_device
from quantbench.runtime.progress import JobProgress
from quantbench.scenarios import measure_scenario

CPU = resolve_device("cpu")


@pytest.mark.parametrize(
    ("precision", "reached"),
    [("gguf-q8_0", "llama.cpp"), ("gguf-q4_k_m", "llama.cpp"), ("fp32", "transformers"), ("nf4", "transformers")],
)
def test_engine_auto_sends_gguf_to_llama_cpp_and_the_rest_to_the_transformers_measurement(
    compose_config, monkeypatch, tmp_path, precision, reached
):
    calls = []
    monkeypatch.setattr(
        "quantbench.scenarios.offline.run_offline",
        lambda cfg, device, job_dir, progress, engine: (calls.append(engine.name), ({}, []))[1],
    )
    cfg = compose_config(["model=tiny-llama", f"precision={precision}", "hardware=cpu"])
    assert cfg.engine.name == "auto"
    measure_scenario(cfg, CPU, tmp_path, JobProgress(precision, bars=False, lines=False))
    assert calls == [reached]


def test_llama_cpp_server_command_serves_the_gguf_file_with_the_jobs_threads(compose_config):
    from quantbench.config import registry
    from quantbench.engines.base import ServerRequest

    engine = registry.engines().get("llama.cpp")
    cfg = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q4_k_m"])
    assert engine.unsupported_reason(cfg.precision, CPU) is None
    request = ServerRequest(
        weights="/c/model.gguf",
        precision=cfg.precision,
        engine=cfg.engine,
        device=CPU,
        host="127.0.0.1",
        port=8123,
        seed=7,
        threads=2,
    )
    command = engine.launch(request).command
    flags = dict(zip(command[3::2], command[4::2]))  # after `python -m llama_cpp.server`
    assert command[1:3] == ["-m", "llama_cpp.server"]
    assert flags == {
        "--model": "/c/model.gguf",
        "--model_alias": "quantbench",
        "--host": "127.0.0.1",
        "--port": "8123",
        "--n_ctx": "0",
        "--n_gpu_layers": "0",
        "--seed": "7",
        "--interrupt_requests": "false",
        "--n_threads": "2",
        "--n_threads_batch": "2",
    }
    assert engine.request_options(16) == {"min_tokens": 16}
    fp32 = compose_config(["scenario=serve", "engine=llama.cpp", "precision=fp32"])
    assert "not a GGUF type" in engine.unsupported_reason(fp32.precision, CPU)
