"""engine.kv_cache_dtype without running a model: each engine's command line, the bytes one token
costs in each cache type, and the values an engine cannot honour as reasons that list what it takes.
The quantized caches for real: tests/e2e/test_kv_cache_quality.py."""

from __future__ import annotations

import sys
from fractions import Fraction

import pytest
from support.engines import server_request

from quantbench.config import registry
from quantbench.engines import kv_cache_dtype
from quantbench.errors import JobSkipped
from quantbench.measure.kv_cache import KvShape, ggml_bytes_per_value, kv_shape_from_config
from quantbench.runtime.device import Device

CPU = Device("cpu", None, "test cpu")
GPU = Device("cuda", 0, "test gpu", capability=(9, 0))
# SmolLM2-135M's config.json (HuggingFaceTB/SmolLM2-135M-Instruct): the shape its KV cache has.
SMOLLM2_CONFIG = {
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "hidden_size": 576,
}


def flag_value(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_llama_server_gets_the_cache_type_for_k_and_v_with_flash_attention(compose_config, tmp_path, own_llama_server):
    engine = registry.engines().get("llama.cpp")
    cfg = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q8_0", "engine.kv_cache_dtype=Q4_0"])
    assert engine.unavailable_reason(cfg.engine, tmp_path) is None
    launch = engine.launch(server_request(cfg, cache_dir=tmp_path, max_concurrency=1, max_sequence_tokens=100))
    command = launch.command
    assert flag_value(command, "--cache-type-k") == flag_value(command, "--cache-type-v") == "q4_0"
    assert flag_value(command, "--flash-attn") == "on"
    assert launch.facts["kv_cache_dtype"] == "q4_0" and launch.facts["flash_attn"] == "on"
    # "/w" is no GGUF file: the shape, and so the bytes, are unknown rather than guessed.
    assert launch.facts["kv_cache_bytes_per_token"] is None

    default = compose_config(["scenario=serve", "engine=llama.cpp", "precision=gguf-q8_0"])
    plain = engine.launch(server_request(default, cache_dir=tmp_path, max_concurrency=1, max_sequence_tokens=100))
    assert not {"--cache-type-k", "--cache-type-v", "--flash-attn"} & set(plain.command)
    assert plain.facts["kv_cache_dtype"] == "f16 (llama.cpp default)"


def test_engine_auto_takes_the_setting_for_a_gguf_precision(compose_config, tmp_path, own_llama_server):
    """The recipe in docs/gguf.md leaves engine=auto: its config has the key too."""
    cfg = compose_config(["scenario=serve", "precision=gguf-q8_0", "engine.kv_cache_dtype=q8_0"])
    assert cfg.engine.name == "auto"
    command = registry.engines().get("llama.cpp").launch(server_request(cfg, cache_dir=tmp_path)).command
    assert flag_value(command, "--cache-type-k") == "q8_0"


def test_llama_cpp_python_server_takes_ggml_type_numbers(compose_config, tmp_path):
    engine = registry.engines().get("llama-cpp-python")
    cfg = compose_config(
        ["scenario=serve", "engine=llama-cpp-python", "precision=gguf-q8_0", "engine.kv_cache_dtype=q8_0"]
    )
    command = engine.launch(server_request(cfg)).command
    # ggml's type numbers: GGML_TYPE_Q8_0 = 8
    assert flag_value(command, "--type_k") == flag_value(command, "--type_v") == "8"
    assert flag_value(command, "--flash_attn") == "true"


@pytest.mark.parametrize("engine_name", ["llama.cpp", "llama-cpp-python"])
def test_an_unknown_llama_cpp_cache_type_is_a_reason_listing_the_types(compose_config, tmp_path, engine_name):
    cfg = compose_config(
        ["scenario=serve", f"engine={engine_name}", "precision=gguf-q8_0", "engine.kv_cache_dtype=q3_k"]
    )
    reason = registry.engines().get(engine_name).unavailable_reason(cfg.engine, tmp_path)
    assert reason == (
        "unknown engine.kv_cache_dtype 'q3_k' for llama.cpp; "
        "choose one of: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1"
    )


def vllm_launch(compose_config, device, *overrides):
    cfg = compose_config(
        ["scenario=serve", "engine=vllm", "precision=fp32", f"engine.command={sys.executable}", *overrides]
    )
    return registry.engines().get("vllm").launch(server_request(cfg, device))


def test_vllm_gets_kv_cache_dtype_and_records_auto_as_the_models_dtype(compose_config, monkeypatch):
    from quantbench.engines import vllm

    default = vllm_launch(compose_config, CPU)
    assert "--kv-cache-dtype" not in default.command
    assert default.facts["kv_cache_dtype"] == "auto: the model dtype (float32)"
    on_gpu = vllm_launch(compose_config, GPU, "engine.kv_cache_dtype=fp8_e5m2")
    assert flag_value(on_gpu.command, "--kv-cache-dtype") == "fp8_e5m2" and on_gpu.facts["kv_cache_dtype"] == "fp8_e5m2"
    # A CPU with AVX-512: vLLM's CPU backend keeps fp8 there.
    monkeypatch.setattr(vllm, "cpu_has_avx512", lambda: True)
    assert (
        flag_value(vllm_launch(compose_config, CPU, "engine.kv_cache_dtype=fp8").command, "--kv-cache-dtype") == "fp8"
    )


def test_vllm_on_a_cpu_without_avx512_skips_fp8_with_vllms_reason(compose_config, monkeypatch):
    from quantbench.engines import vllm

    monkeypatch.setattr(vllm, "cpu_has_avx512", lambda: False)
    with pytest.raises(JobSkipped, match="FP8 KV cache on CPU requires x86 with AVX-512 or AMX"):
        vllm_launch(compose_config, CPU, "engine.kv_cache_dtype=fp8")
    with pytest.raises(JobSkipped, match="on a CPU .*choose one of: auto, fp8, fp8_e4m3, fp8_e5m2$"):
        vllm_launch(compose_config, CPU, "engine.kv_cache_dtype=turboquant_k8v4")


def test_an_unknown_vllm_dtype_is_a_reason_listing_vllms(compose_config, tmp_path):
    engine = compose_config(["scenario=serve", "engine=vllm", "engine.kv_cache_dtype=int3"]).engine
    reason = registry.engines().get("vllm").unavailable_reason(engine, tmp_path)
    assert reason.startswith(
        "unknown engine.kv_cache_dtype 'int3' for vLLM; choose one of: auto, float16, bfloat16, fp8"
    )


def test_transformers_serve_has_no_kv_cache_dtype_and_says_so(compose_config, tmp_path):
    engine = registry.engines().get("transformers")
    quantized = compose_config(["scenario=serve", "engine=transformers", "engine.kv_cache_dtype=quanto-int4"]).engine
    assert engine.unavailable_reason(quantized, tmp_path) == kv_cache_dtype.TRANSFORMERS_SERVE_REASON
    own = compose_config(["scenario=serve", "engine=transformers", "engine.kv_cache_dtype=model"]).engine
    assert engine.unavailable_reason(own, tmp_path) is None
    cfg = compose_config(["scenario=serve", "engine=transformers", "precision=bf16"])
    assert engine.launch(server_request(cfg)).facts["kv_cache_dtype"] == "model dtype, serve's only (bfloat16)"


def test_an_endpoint_already_running_cannot_take_a_kv_cache_dtype(compose_config):
    cfg = compose_config(
        ["scenario=serve", "engine=openai", "engine.url=http://127.0.0.1:9", "engine.kv_cache_dtype=q8_0"]
    )
    with pytest.raises(JobSkipped, match="the server is already running"):
        registry.engines().get("openai").endpoint(cfg.engine)


def test_transformers_offline_types_map_to_the_quantized_cache_and_unknown_ones_are_skipped(compose_config):
    cfg = compose_config(["engine=transformers", "engine.kv_cache_dtype=hqq-int2"])
    assert kv_cache_dtype.transformers_cache(cfg.engine).generate_kwargs() == {
        "cache_implementation": "quantized",
        "cache_config": {"backend": "hqq", "nbits": 2},
    }
    assert kv_cache_dtype.transformers_cache(compose_config(["engine=transformers"]).engine) is None
    bad = compose_config(["engine=transformers", "engine.kv_cache_dtype=q8_0"])
    with pytest.raises(JobSkipped, match="'q8_0' for transformers .*choose one of: model, quanto-int4"):
        kv_cache_dtype.transformers_cache(bad.engine)


def test_bytes_per_token_of_each_cache_type_on_tiny_llama_and_smollm2(compose_config):
    tiny = kv_shape_from_config(dict(compose_config(["model=tiny-llama"]).model.architecture))
    smollm2 = kv_shape_from_config(SMOLLM2_CONFIG)
    assert (tiny, smollm2) == (KvShape(2, 2, 32), KvShape(30, 3, 64))
    # llama.cpp's block formats, from gguf-py: q8_0 34 bytes per 32 values, q4_0 18, q5_1 24
    assert ggml_bytes_per_value("q8_0") == Fraction(34, 32) and ggml_bytes_per_value("Q4_0") == Fraction(18, 32)
    expected = {
        # type: (tiny-llama: 2 x 2 layers x 2 heads x 32 = 256 values, SmolLM2: 2 x 30 x 3 x 64 = 11520)
        "f32": (1024, 46080),
        "f16": (512, 23040),
        "bf16": (512, 23040),
        "q8_0": (272, 12240),
        "q5_1": (192, 8640),
        "q5_0": (176, 7920),
        "q4_1": (160, 7200),
        "q4_0": (144, 6480),
        "iq4_nl": (144, 6480),
    }
    for name in kv_cache_dtype.LLAMA_CPP_TYPES:
        facts = kv_cache_dtype.llama_cpp_facts(name, tiny), kv_cache_dtype.llama_cpp_facts(name, smollm2)
        assert tuple(fact["kv_cache_bytes_per_token"] for fact in facts) == expected[name], name
    assert kv_cache_dtype.vllm_facts(None, "float32", smollm2)["kv_cache_bytes_per_token"] == 46080
    assert kv_cache_dtype.vllm_facts("fp8", "float32", smollm2)["kv_cache_bytes_per_token"] == 11520
    # A packed GPU format quantbench does not count: null, not a guess.
    assert kv_cache_dtype.vllm_facts("nvfp4", "float32", smollm2)["kv_cache_bytes_per_token"] is None


def test_only_a_cache_other_than_f16_with_text_quality_is_compared_to_the_f16_cache():
    from omegaconf import OmegaConf

    from quantbench.quality.cache_precision import compares_cache

    def quality(**selected):  # the quality node as `quality=[...]` composes it: absent metrics are null
        return OmegaConf.create({"ppl": None, "kld": None, "pubmedqa": None, **selected})

    with_text = quality(ppl={})
    assert compares_cache("q4_0", with_text) and compares_cache("q8_0", quality(kld={"top_k": 32}))
    assert not compares_cache("f16", with_text)  # the reference type itself
    assert not compares_cache(None, with_text)  # llama.cpp's default cache is f16
    assert not compares_cache("q4_0", quality(pubmedqa={})) and not compares_cache("q4_0", quality())
