"""The `engine` group's schemas (conf/engine/): who runs the model, a server quantbench starts, or
an endpoint that is already running."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


@dataclass
class EngineConfig:
    """Who runs the model: a name in the quantbench.engines entry-point group, or `auto` (the
    precision's own engine: its `engine` key where it has one, else transformers)."""

    name: str = MISSING
    # The KV cache's precision (quantbench/engines/kv_cache_dtype.py): a ggml type on llama.cpp (f16,
    # q8_0, q4_0, ...), vLLM's --kv-cache-dtype (auto, fp8, ...), transformers' quantized cache offline
    # (quanto-int4, hqq-int4, fp8, ...); null: the engine's own (f16, auto, the model's dtype). Recorded
    # as kv_cache_dtype with kv_cache_bytes_per_token; a value the engine cannot honour skips the job.
    kv_cache_dtype: Optional[str] = None


@dataclass
class ServerEngineConfig(EngineConfig):
    """An engine whose server quantbench starts for each serving job, on a free port of 127.0.0.1."""

    # The executable (a path, or a command line such as `python my_server.py`); null: the engine's
    # own (e.g. `vllm` on PATH), so an engine may live in its own virtual environment.
    command: Optional[str] = None
    args: List[str] = field(default_factory=list)  # appended to the command line quantbench builds
    # Reuse of cached prompt prefixes across requests; null: the engine's default (recorded as such).
    prefix_caching: Optional[bool] = None


@dataclass
class TransformersEngineConfig(ServerEngineConfig):
    """`transformers serve`: continuous batching reserves this share of the device's memory for its
    KV cache at start (`--cb-max-memory-percent`, a fraction). transformers' own default (0.6 of
    RAM on a CPU, 0.9 of a GPU) leaves no room for a second server or sweep on the same machine;
    null: the server's default."""

    kv_cache_memory_fraction: Optional[float] = 0.2


@dataclass
class VllmEngineConfig(ServerEngineConfig):
    """`vllm serve`. On a CPU, vLLM reserves its KV cache when it starts: by default 90 % of the
    machine's memory (`--gpu-memory-utilization` is a share of RAM there), which leaves room for
    nothing else, so quantbench gives it a size."""

    # Whole GiB of KV cache on a CPU, as vLLM's VLLM_CPU_KVCACHE_SPACE; null: vLLM's own sizing. Not
    # used on a GPU, where vLLM sizes it by --gpu-memory-utilization (engine.args).
    kv_cache_space_gb: Optional[int] = 1
    # The CPU cores vLLM's worker binds its threads to (VLLM_CPU_OMP_THREADS_BIND: "0-3", "nobind", ...);
    # null: vLLM's default, `auto` (one core kept for vLLM's scheduler, one thread per physical core of
    # the rest).
    cpu_threads_bind: Optional[str] = None
    # --max-model-len; null: the model's own context length (vLLM's default). A model whose context
    # does not fit in the KV cache needs a smaller one, or more engine.kv_cache_space_gb.
    max_model_len: Optional[int] = None


@dataclass
class LlamaServerEngineConfig(ServerEngineConfig):
    """llama.cpp's llama-server: `parallel` slots decoded together (continuous batching), each with
    `ctx_per_slot` tokens of context (`--ctx-size` is their product). Prefix caching is off by default,
    so that TTFT measures the prompt's prefill (null: llama-server's default, on)."""

    prefix_caching: Optional[bool] = False

    # null: the job's highest serve.concurrency (an open-loop job: engines/llama_server.py's default)
    parallel: Optional[int] = None
    # null: the job's longest request (prompt with its chat template, plus bench.max_new_tokens),
    # with room for a tokenizer's difference, rounded up to 256
    ctx_per_slot: Optional[int] = None


@dataclass
class EndpointEngineConfig(EngineConfig):
    """An OpenAI-compatible server that is already running (TGI, SGLang, llama-server, a remote
    deployment): quantbench sends its load to `url` and starts nothing."""

    url: Optional[str] = None  # where /v1/... lives, e.g. http://127.0.0.1:8000
    # The NAME of the environment variable holding the API key; the key itself is never in a config.
    api_key_env: Optional[str] = None
    model: Optional[str] = None  # the served model's name; null: the first one GET /v1/models lists
    # Offered with every request body as it is, any keys (e.g. {ignore_eos: true} for a vLLM
    # endpoint); a field the server refuses is dropped at the start probe and recorded.
    extra_body: Dict[str, Any] = field(default_factory=dict)
