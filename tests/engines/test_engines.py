"""Engines: the config groups compose, each engine's command line per precision (every vLLM flag
checked against vLLM's CLI source), the precisions a server cannot express, and engine=auto."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from support.engines import server_request

from quantbench.config import registry
from quantbench.engines.base import engine_name
from quantbench.errors import JobSkipped
from quantbench.loadgen.rows import scenario_rows
from quantbench.runtime.device import Device
from quantbench.scenarios.serve import serve_levels

CPU = Device("cpu", None, "test cpu")
GPU = Device("cuda", 0, "test gpu", capability=(9, 0))
OLD_GPU = Device("cuda", 0, "old gpu", capability=(7, 5))


def launch(cfg, device=CPU):
    engine = registry.engines().get(cfg.engine.name)
    assert engine.unsupported_reason(cfg.precision, device) is None
    return engine.launch(server_request(cfg, device))


def test_groups_compose_with_defaults(compose_config):
    cfg = compose_config([])
    assert cfg.scenario.name == "offline" and cfg.engine.name == "auto"
    assert list(cfg.serve.concurrency) == [1] and list(cfg.serve.request_rate) == []
    cfg = compose_config(["scenario=serve", "engine=vllm", "serve.concurrency=[1,4]", "serve.slo.e2e_ms=2000"])
    assert cfg.serve.slo.e2e_ms == 2000 and cfg.engine.prefix_caching is False


def test_engine_auto_is_the_precisions_own(compose_config):
    assert engine_name(compose_config(["precision=nf4"])) == "transformers"
    assert engine_name(compose_config(["precision=nf4", "engine=vllm"])) == "vllm"
    with_own = OmegaConf.create({"engine": {"name": "auto"}, "precision": {"name": "gguf-q4_0", "engine": "llama.cpp"}})
    assert engine_name(with_own) == "llama.cpp"


@pytest.mark.parametrize(
    ("precision", "arguments"),
    [
        ("fp32", ["--dtype", "float32"]),
        ("fp16", ["--dtype", "float16"]),
        ("bf16", ["--dtype", "bfloat16"]),
        ("nf4", ["--quantization", "bnb-4bit"]),
        ("int8", ["--quantization", "bnb-8bit"]),
        ("gptq", []),
        ("awq", []),
    ],
)
def test_transformers_serve_command_per_precision(compose_config, precision, arguments):
    started = launch(compose_config(["scenario=serve", "engine=transformers", f"precision={precision}"]))
    command = started.command
    assert command[command.index("serve") + 1] == "/w"
    assert "--continuous-batching" in command
    assert command[command.index("--port") + 1] == "8123" and command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--default-seed") + 2 :] == arguments
    assert started.health_path == "/health" and started.model_name == "/w"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["precision.quant_type=fp4"], "quant_type='fp4'"),
        (["precision.compute_dtype=bfloat16"], "compute_dtype='bfloat16'"),
        (["precision.double_quant=false"], "double_quant=False"),
    ],
)
def test_transformers_serve_cannot_express_other_nf4_settings(compose_config, overrides, expected):
    cfg = compose_config(["scenario=serve", "engine=transformers", "precision=nf4", *overrides])
    reason = registry.engines().get("transformers").unsupported_reason(cfg.precision, CPU)
    assert reason and expected in reason and "bnb-4bit" in reason


def test_transformers_nf4_on_a_gpu_computes_in_bfloat16_which_the_server_cannot(compose_config):
    cfg = compose_config(["scenario=serve", "engine=transformers", "precision=nf4"])
    assert "compute_dtype='bfloat16'" in registry.engines().get("transformers").unsupported_reason(cfg.precision, GPU)


@pytest.mark.parametrize(
    ("precision", "arguments"),
    [
        ("fp32", ["--dtype", "float32"]),
        ("fp16", ["--dtype", "float16"]),
        ("bf16", ["--dtype", "bfloat16"]),
        ("nf4", ["--quantization", "bitsandbytes"]),
        ("gptq", []),
        ("awq", []),
    ],
)
def test_vllm_command_per_precision(compose_config, precision, arguments):
    cfg = compose_config(
        [
            "scenario=serve",
            "engine=vllm",
            f"precision={precision}",
            "engine.command=/opt/vllm/bin/vllm",
            "engine.args=[--max-model-len,'2048']",
        ]
    )
    command = launch(cfg, GPU).command
    assert command[:3] == ["/opt/vllm/bin/vllm", "serve", "/w"]
    # Every flag below is vLLM's own (vllm/engine/arg_utils.py, vllm/entrypoints/openai/cli_args.py).
    expected = [
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "quantbench",
        "--seed",
        "0",
        "--generation-config",
        "vllm",
        *arguments,
        "--no-enable-prefix-caching",
        "--max-model-len",
        "2048",
    ]
    assert command[3:] == expected
    assert registry.engines().get("vllm").request_options(16) == {"ignore_eos": True}


def test_vllm_prefix_caching_follows_the_setting(compose_config):
    cfg = compose_config(
        ["scenario=serve", "engine=vllm", "precision=fp16", "engine.prefix_caching=true", "engine.command=vllm"]
    )
    started = launch(cfg, GPU)
    assert "--enable-prefix-caching" in started.command and started.prefix_caching == "on"
    cfg = compose_config(
        ["scenario=serve", "engine=vllm", "precision=fp16", "engine.prefix_caching=null", "engine.command=vllm"]
    )
    started = launch(cfg, GPU)
    assert not any("prefix-caching" in part for part in started.command) and "default" in started.prefix_caching


def test_vllm_skips_what_it_cannot_quantize_in_flight(compose_config):
    vllm = registry.engines().get("vllm")
    int8 = compose_config(["scenario=serve", "engine=vllm", "precision=int8"]).precision
    assert "4-bit only" in vllm.unsupported_reason(int8, GPU)
    nf4 = compose_config(["scenario=serve", "engine=vllm", "precision=nf4"]).precision
    assert vllm.unsupported_reason(nf4, GPU) is None
    assert "bfloat16" in vllm.unsupported_reason(nf4, OLD_GPU)  # auto computes in float16 there


def test_missing_executables_are_reasons(compose_config, tmp_path):
    cfg = compose_config(["scenario=serve", "engine=vllm", "engine.command=/nonexistent/vllm"])
    assert "/nonexistent/vllm" in registry.engines().get("vllm").unavailable_reason(cfg.engine, tmp_path)
    cfg = compose_config(["scenario=serve", "engine=transformers", "engine.prefix_caching=true"])
    assert "prefix-cache" in registry.engines().get("transformers").unavailable_reason(cfg.engine, tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["serve.concurrency=[2]", "serve.request_rate=[1.5]"], "exclusive"),
        (["serve.requests_per_level=null"], "never end"),
        (["serve.request_rate=[0]"], "positive"),
        (["serve.concurrency=[0]"], "at least 1"),
    ],
)
def test_bad_load_settings_are_skipped_rows(compose_config, overrides, message):
    with pytest.raises(JobSkipped, match=message):
        serve_levels(compose_config(["scenario=serve", *overrides]).serve)


def test_default_concurrency_yields_to_a_rate(compose_config):
    levels = serve_levels(compose_config(["scenario=serve", "serve.request_rate=[0.5,2]"]).serve)
    assert [(level.concurrency, level.request_rate) for level in levels] == [(None, 0.5), (None, 2.0)]


def test_a_serving_result_becomes_one_row_per_level():
    data = {
        "config": {"scenario": {"name": "serve"}, "engine": {"name": "auto"}, "precision": {"name": "fp32"}},
        "metrics": {
            "scenario": "serve",
            "engine": "transformers",
            "levels": [
                {"level": 0, "concurrency": 1, "request_rate": None, "e2e_p50_ms": 5.0},
                {"level": 1, "concurrency": 4, "request_rate": None, "e2e_p50_ms": 9.0},
            ],
        },
    }
    rows = scenario_rows(data, {"model": "m", "precision": "fp32", "status": "ok"})
    assert [(row["concurrency"], row["e2e_p50_ms"], row["scenario"], row["engine"]) for row in rows] == [
        (1, 5.0, "serve", "transformers"),
        (4, 9.0, "serve", "transformers"),
    ]
    offline = scenario_rows(
        {"config": {"engine": {"name": "auto"}, "precision": {"engine": "llama.cpp"}}, "metrics": {}}, {}
    )
    assert offline == [{"scenario": "offline", "engine": "llama.cpp"}]
