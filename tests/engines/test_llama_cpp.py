"""The llama.cpp engine among the others: which measurement a precision reaches, and the server
commands with the job's threads: llama-server's (engine=llama.cpp) and llama-cpp-python's
(engine=llama-cpp-python). Sweeps across engines: tests/e2e/test_llama_cpp_engine.py; a real
llama-server: tests/e2e/test_llama_server.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.engines import server_request as support_server_request

from quantbench.config import registry
from quantbench.engines.base import ServerRequest, check_precision_engine
from quantbench.engines.llama_server import OPEN_LOOP_SLOTS
from quantbench.errors import JobSkipped
from quantbench.gguf.tools import INSTALL_COMMAND, TOOLS_ENV
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


def test_llama_cpp_python_server_command_serves_the_gguf_file_with_the_jobs_threads(compose_config, tmp_path):
    engine = registry.engines().get("llama-cpp-python")
    cfg = compose_config(["scenario=serve", "engine=llama-cpp-python", "precision=gguf-q4_k_m"])
    assert engine.unsupported_reason(cfg.precision, CPU) is None
    # GGUF precisions name engine llama.cpp; this engine serves their files too.
    check_precision_engine(cfg, "llama-cpp-python", engine)
    command = engine.launch(server_request(cfg, tmp_path)).command
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
    fp32 = compose_config(["scenario=serve", "engine=llama-cpp-python", "precision=fp32"])
    assert "not a GGUF type" in engine.unsupported_reason(fp32.precision, CPU)
    assert not engine.offline


def server_request(cfg, cache_dir: Path, **load) -> ServerRequest:
    return support_server_request(
        cfg, weights="/c/model.gguf", seed=7, threads=2, cache_dir=cache_dir, device=CPU, **load
    )


def test_llama_server_gets_a_slot_per_user_of_the_busiest_level_each_with_the_longest_request(
    compose_config, tmp_path, own_llama_server
):
    engine = registry.engines().get("llama.cpp")
    cfg = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q4_k_m"])
    assert engine.unavailable_reason(cfg.engine, tmp_path) is None
    assert engine.unsupported_reason(cfg.precision, CPU) is None
    # 300 tokens of the longest prompt and its new tokens, +64 of margin: 512 per slot.
    launch = engine.launch(server_request(cfg, tmp_path, max_concurrency=4, max_sequence_tokens=300))
    command = launch.command
    assert command[0] == str(own_llama_server)
    switches = ["--cont-batching", "--no-kv-unified", "--no-cache-prompt", "--metrics"]
    assert all(switch in command for switch in switches)
    valued = [word for word in command[1:] if word not in switches]
    assert dict(zip(valued[::2], valued[1::2])) == {
        "--model": "/c/model.gguf",
        "--alias": "quantbench",
        "--host": "127.0.0.1",
        "--port": "8123",
        "--parallel": "4",
        "--ctx-size": str(4 * 512),
        "--n-gpu-layers": "0",
        "--seed": "7",
        "--cache-ram": "0",
        "--threads": "2",
        "--threads-batch": "2",
    }
    assert launch.health_path == "/health" and launch.model_name == "quantbench"
    assert launch.prefix_caching.startswith("off")
    assert launch.facts == {
        "llama_server_slots": 4,
        "llama_server_ctx_per_slot": 512,
        "llama_server_ctx_size": 2048,
        "llama_server_continuous_batching": True,
        "llama_cpp_build": "version: 4242 (0c1e570) built with cc for x86_64",
        # engine.kv_cache_dtype unset: llama-server's own f16 cache ("/c/model.gguf" is no file: no shape, no bytes)
        "kv_cache_dtype": "f16 (llama.cpp default)",
        "kv_cache_bytes_per_token": None,
        "flash_attn": "llama.cpp default",
    }
    assert "--ctx-size" in launch.memory_setting
    assert engine.request_options(16) == {"ignore_eos": True}


def test_llama_server_settings_of_ones_own_win(compose_config, tmp_path, own_llama_server):
    engine = registry.engines().get("llama.cpp")
    cfg = compose_config(
        [
            "scenario=serve",
            "engine=llama.cpp",
            "precision=gguf-q4_k_m",
            "engine.parallel=3",
            "engine.ctx_per_slot=1000",
            "engine.prefix_caching=true",
            "engine.args=[--batch-size,'64']",
        ]
    )
    launch = engine.launch(server_request(cfg, tmp_path, max_concurrency=16, max_sequence_tokens=90))
    command = launch.command
    assert command[command.index("--parallel") + 1] == "3" and command[command.index("--ctx-size") + 1] == "3000"
    assert "--cache-prompt" in command and "--no-cache-prompt" not in command and launch.prefix_caching.startswith("on")
    assert command[-2:] == ["--batch-size", "64"]
    # engine=auto (a GGUF precision's default) has none of llama-server's keys: the same defaults.
    auto = compose_config(["scenario=serve", "precision=gguf-q4_k_m"])
    assert auto.engine.name == "auto"
    launch = engine.launch(server_request(auto, tmp_path, max_concurrency=2, max_sequence_tokens=90))
    assert "--no-cache-prompt" in launch.command and launch.facts["llama_server_slots"] == 2
    # An open-loop job (no concurrency levels) with no length: the default slots, the model's context.
    open_loop = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q4_k_m"])
    launch = engine.launch(server_request(open_loop, tmp_path))
    assert launch.facts["llama_server_slots"] == OPEN_LOOP_SLOTS and launch.facts["llama_server_ctx_size"] == 0
    bad = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q4_k_m", "engine.parallel=0"])
    assert "engine.parallel" in engine.unavailable_reason(bad.engine, tmp_path)


def test_llama_server_missing_from_the_cache_is_a_reason_naming_the_install_command(
    compose_config, tmp_path, monkeypatch
):
    monkeypatch.delenv(TOOLS_ENV, raising=False)
    engine = registry.engines().get("llama.cpp")
    cfg = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q4_k_m"])
    reason = engine.unavailable_reason(cfg.engine, tmp_path / "empty")
    assert INSTALL_COMMAND in reason and "llama-server" in reason and "\n" not in reason
    fp32 = compose_config(["scenario=serve", "engine=llama.cpp", "precision=fp32"])
    assert "not a GGUF type" in engine.unsupported_reason(fp32.precision, CPU)
    # engine=transformers still refuses GGUF precisions (they are llama.cpp's files).
    gguf_on_transformers = compose_config(["scenario=serve", "engine=transformers", "precision=gguf-q4_k_m"])
    with pytest.raises(JobSkipped, match="engine=llama.cpp"):
        check_precision_engine(gguf_on_transformers, "transformers", registry.engines().get("transformers"))
