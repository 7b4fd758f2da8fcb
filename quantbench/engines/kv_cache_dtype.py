"""engine.kv_cache_dtype: the precision of the KV cache, for the engines that have such a setting.

null (the default) is the engine's own: f16 on llama.cpp, `auto` (the model's dtype) on vLLM, the
model's dtype on transformers. What each engine accepts, and how it is passed:
- llama.cpp (llama-server, llama-cpp-python offline and its server): one ggml type for K and V,
  `--cache-type-k T --cache-type-v T` (the types llama.cpp's common/arg.cpp lists in
  `kv_cache_types`). A quantized V cache needs flash attention (llama_init_from_model refuses it
  without), so a job that sets the type runs with flash attention on, whatever the type (f16 too:
  a sweep over types then differs in the cache alone);
- vLLM: `--kv-cache-dtype` (vLLM 0.32's CacheDType); its CPU backend (CPUAttentionBackend) takes
  auto and the fp8 types only, and fp8 only on an x86 CPU with AVX-512 or AMX;
- transformers offline: transformers' quantized cache passed to generate()
  (`cache_implementation="quantized"`, QuantizedCache): quanto (2 or 4 bits), HQQ (1, 2, 3, 4 or 8
  bits) or fp8, with the library's group size (64) and residual length (128 tokens kept unquantized);
- `transformers serve` keeps its continuous-batching cache in the model's dtype: no setting.
An engine that cannot honour the value skips the job with the reason and the values it accepts.
Every result records `kv_cache_dtype` (resolved: `f16 (llama.cpp default)`, ...) and
`kv_cache_bytes_per_token` (quantbench/measure/kv_cache.py owns the byte counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.measure.kv_cache import KvShape

# llama.cpp's common/arg.cpp `kv_cache_types` (llama-cpp-python 0.3.36's vendored llama.cpp).
LLAMA_CPP_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
LLAMA_CPP_DEFAULT = "f16"
# vLLM 0.32's CacheDType (vllm/config/cache.py) and what its CPU attention backend supports
# (CPUAttentionBackend.supported_kv_cache_dtypes, vllm/v1/attention/backends/cpu_attn.py).
VLLM_TYPES = (
    "auto",
    "float16",
    "bfloat16",
    "fp8",
    "fp8_e4m3",
    "fp8_e5m2",
    "fp8_inc",
    "fp8_ds_mla",
    "nvfp4_ds_mla",
    "turboquant_k8v4",
    "turboquant_4bit_nc",
    "turboquant_k3v4_nc",
    "turboquant_3bit_nc",
    "ultraquant_4bit",
    "int4_per_token_head",
    "int8_per_token_head",
    "fp8_per_token_head",
    "nvfp4",
    "nvfp4_4over6",
)
VLLM_CPU_TYPES = ("auto", "fp8", "fp8_e4m3", "fp8_e5m2")
VLLM_DEFAULT = "auto"
# Bytes per value of vLLM's types whose storage is one plain element; the packed GPU formats
# (turboquant, nvfp4, ...) are not counted here (kv_cache_bytes_per_token null).
VLLM_VALUE_BYTES = {"float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1}
FP8_CPU_REQUIREMENT = "FP8 KV cache on CPU requires x86 with AVX-512 or AMX."  # vLLM's own words (cpu_attn.py)


@dataclass(frozen=True)
class QuantizedCache:
    """transformers' QuantizedCache backend and bits (None: fp8, per tensor)."""

    backend: str
    nbits: int | None

    def options(self) -> dict[str, Any]:
        return {} if self.nbits is None else {"nbits": self.nbits}

    def generate_kwargs(self) -> dict[str, Any]:
        return {"cache_implementation": "quantized", "cache_config": {"backend": self.backend, **self.options()}}

    def make(self, model_config: Any) -> Any:
        """The cache generate() makes for these kwargs (transformers' QuantizedCache)."""
        from transformers.cache_utils import QuantizedCache as LibraryCache

        return LibraryCache(backend=self.backend, config=model_config, **self.options())


TRANSFORMERS_TYPES = {
    "model": None,  # the model's dtype, DynamicCache: the default
    "quanto-int4": QuantizedCache("quanto", 4),
    "quanto-int2": QuantizedCache("quanto", 2),
    "hqq-int8": QuantizedCache("hqq", 8),
    "hqq-int4": QuantizedCache("hqq", 4),
    "hqq-int3": QuantizedCache("hqq", 3),
    "hqq-int2": QuantizedCache("hqq", 2),
    "hqq-int1": QuantizedCache("hqq", 1),
    "fp8": QuantizedCache("fp8", None),
}
TRANSFORMERS_DEFAULT = "model"
TRANSFORMERS_SERVE_REASON = (
    "`transformers serve` has no KV-cache dtype setting: its continuous-batching cache holds keys and values "
    "in the model's dtype (transformers/generation/continuous_batching/cache.py: the dtype 'of the activation "
    "and the cache (for now, these are the same)'); leave engine.kv_cache_dtype null, or measure transformers' "
    "quantized cache offline (scenario=offline engine=transformers)"
)


def configured(engine: DictConfig) -> str | None:
    """engine.kv_cache_dtype as set (lower case), None for the engine's default."""
    value = engine.get("kv_cache_dtype")
    return None if value is None else str(value).lower()


def checkpoint_shape(weights: str) -> KvShape | None:
    """The KV shape from a served checkpoint directory's config.json, None without one."""
    import json
    from pathlib import Path

    from quantbench.measure.kv_cache import kv_shape_from_config

    config_file = Path(weights) / "config.json"
    return kv_shape_from_config(json.loads(config_file.read_text())) if config_file.is_file() else None


def dense_dtype(precision: DictConfig) -> str | None:
    """The torch dtype a dense precision (fp32, fp16, bf16) runs in: its KV cache's; None for the
    others (a quantized checkpoint's compute dtype is the server's to choose)."""
    from quantbench.engines.server_command import DENSE_BACKENDS

    dtype = precision.get("dtype")
    return str(dtype) if str(precision.backend) in DENSE_BACKENDS and dtype else None


def model_dtype_facts(model_dtype: str | None, shape: KvShape | None, label: str) -> dict[str, Any]:
    """The model's own cache: `<label> (<dtype>)` and its bytes where the dtype is known."""
    from quantbench.measure.kv_cache import DTYPE_BYTES

    value_bytes = DTYPE_BYTES.get(model_dtype or "")
    return {
        "kv_cache_dtype": f"{label} ({model_dtype or 'the checkpoint dtype'})",
        "kv_cache_bytes_per_token": None
        if shape is None or value_bytes is None
        else shape.bytes_per_token(value_bytes),
    }


def unknown_reason(engine_name: str, value: str, accepted: tuple[str, ...] | list[str], where: str = "") -> str:
    return f"unknown engine.kv_cache_dtype '{value}' for {engine_name}{where}; choose one of: {', '.join(accepted)}"


# llama.cpp


def llama_cpp_reason(engine: DictConfig) -> str | None:
    value = configured(engine)
    if value is not None and value not in LLAMA_CPP_TYPES:
        return unknown_reason("llama.cpp", value, LLAMA_CPP_TYPES)
    return None


def llama_cpp_type(engine: DictConfig) -> str | None:
    """The configured ggml type name (checked by llama_cpp_reason first), None for llama.cpp's default."""
    value = configured(engine)
    if value is not None and value not in LLAMA_CPP_TYPES:
        from quantbench.errors import JobSkipped

        raise JobSkipped(unknown_reason("llama.cpp", value, LLAMA_CPP_TYPES))
    return value


def ggml_type_id(name: str) -> int:
    """The ggml_type number llama.cpp's context parameters take (type_k, type_v)."""
    from gguf import GGMLQuantizationType

    return int(GGMLQuantizationType[name.upper()])


def llama_server_arguments(value: str | None) -> list[str]:
    if value is None:
        return []
    return ["--cache-type-k", value, "--cache-type-v", value, "--flash-attn", "on"]


def llama_cpp_facts(value: str | None, shape: KvShape | None) -> dict[str, Any]:
    """kv_cache_dtype, its bytes per token (from the file's shape), and the flash attention it runs with."""
    from quantbench.measure.kv_cache import ggml_bytes_per_value

    name = value or LLAMA_CPP_DEFAULT
    return {
        "kv_cache_dtype": name if value is not None else f"{name} (llama.cpp default)",
        "kv_cache_bytes_per_token": None if shape is None else shape.bytes_per_token(ggml_bytes_per_value(name)),
        # A set cache type runs with flash attention on (a quantized V cache needs it); unset: llama.cpp's own.
        "flash_attn": "on" if value is not None else "llama.cpp default",
    }


# vLLM


def vllm_reason(engine: DictConfig, on_cpu: bool, cpu_has_avx512: bool) -> str | None:
    value = configured(engine)
    if value is None:
        return None
    if value not in VLLM_TYPES:
        return unknown_reason("vLLM", value, VLLM_TYPES)
    if on_cpu and value not in VLLM_CPU_TYPES:
        return unknown_reason("vLLM", value, VLLM_CPU_TYPES, " on a CPU (its CPU attention backend's types)")
    if on_cpu and value.startswith("fp8") and not cpu_has_avx512:
        return (
            f"vLLM's CPU attention backend cannot keep an fp8 KV cache on this CPU (no AVX-512, no AMX): "
            f"`{FP8_CPU_REQUIREMENT}` (vllm/v1/attention/backends/cpu_attn.py); use engine.kv_cache_dtype=auto"
        )
    return None


def vllm_arguments(value: str | None) -> list[str]:
    return [] if value is None else ["--kv-cache-dtype", value]


def vllm_facts(value: str | None, model_dtype: str | None, shape: KvShape | None) -> dict[str, Any]:
    """`auto` is the model's dtype (`model_dtype`: the precision's torch dtype, None where vLLM reads it
    from the checkpoint)."""
    name = value or VLLM_DEFAULT
    if name == "auto":
        return model_dtype_facts(model_dtype, shape, "auto: the model dtype")
    value_bytes = VLLM_VALUE_BYTES.get(name)
    return {
        "kv_cache_dtype": name,
        "kv_cache_bytes_per_token": None
        if shape is None or value_bytes is None
        else shape.bytes_per_token(value_bytes),
    }


# transformers


def transformers_reason(engine: DictConfig) -> str | None:
    value = configured(engine)
    if value is not None and value not in TRANSFORMERS_TYPES:
        return unknown_reason("transformers (offline)", value, list(TRANSFORMERS_TYPES))
    return None


def transformers_cache(engine: DictConfig) -> QuantizedCache | None:
    """The quantized cache generate() gets, None for the model's own (DynamicCache)."""
    value = configured(engine)
    if value is None:
        return None
    if value not in TRANSFORMERS_TYPES:
        from quantbench.errors import JobSkipped

        raise JobSkipped(unknown_reason("transformers (offline)", value, list(TRANSFORMERS_TYPES)))
    return TRANSFORMERS_TYPES[value]


def transformers_serve_reason(engine: DictConfig) -> str | None:
    value = configured(engine)
    if value is None or value == TRANSFORMERS_DEFAULT:
        return None
    return TRANSFORMERS_SERVE_REASON


def endpoint_reason(engine: DictConfig) -> str | None:
    """An endpoint that is already running has the KV cache it was started with."""
    if configured(engine) is None:
        return None
    return (
        "engine.kv_cache_dtype cannot be set for engine=openai: the server is already running, with the KV cache "
        "it was started with (set it where it is started, e.g. llama-server --cache-type-k/--cache-type-v, "
        "vllm serve --kv-cache-dtype); leave engine.kv_cache_dtype null"
    )
