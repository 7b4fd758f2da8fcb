"""engine=llama.cpp, serving: llama.cpp's own server, llama-server, on the precision's GGUF file.

llama-server comes from quantbench's build of llama.cpp's tools (`quantbench engines install
llama.cpp`, gguf/tools.py; QUANTBENCH_LLAMA_CPP_TOOLS or engine.command for a build of one's own).
It decodes `--parallel` slots together with continuous batching: quantbench gives it one slot per
user of the job's highest concurrency level, each slot the context of the job's longest request
(`--ctx-size` is slots x context per slot, the KV cache kept per slot: `--no-kv-unified`). Requests
are greedy (the client's temperature 0) and run to max_tokens (`ignore_eos`, which llama-server's
README documents). Prefix caching is engine.prefix_caching: off by default (`--no-cache-prompt`,
`--cache-ram 0`) so that TTFT measures the prompt's prefill, as vLLM's engine does. The KV cache's
type is engine.kv_cache_dtype (`--cache-type-k/--cache-type-v` with `--flash-attn on`,
quantbench/engines/kv_cache_dtype.py), null: llama-server's f16. `--metrics` turns on its
Prometheus /metrics, which the serving scenario scrapes (quantbench.loadgen.server_metrics).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.config.schema import LlamaServerEngineConfig
from quantbench.engines import kv_cache_dtype
from quantbench.engines.server_command import configured_executable, missing_executable_reason

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.engines.base import ServerLaunch, ServerRequest
    from quantbench.runtime.device import Device

SERVER = "llama-server"
SERVED_MODEL_NAME = "quantbench"  # --alias: what requests name as `model`
GGUF_ENGINE = "llama.cpp"  # the engine GGUF precisions name (their files are llama.cpp's)
# Slots for an open-loop job (serve.request_rate), whose number of users at once has no bound.
OPEN_LOOP_SLOTS = 8
# Context per slot beyond the longest request as quantbench's tokenizer counts it: llama.cpp's own
# tokenizer may differ by a few tokens; then rounded up to a multiple of CONTEXT_STEP.
CONTEXT_MARGIN_TOKENS = 64
CONTEXT_STEP = 256
PREFIX_CACHE_OFF = ["--no-cache-prompt", "--cache-ram", "0"]  # no reuse within a slot, no RAM prompt cache
PREFIX_CACHE_ON = ["--cache-prompt"]


def server_executable(engine: DictConfig, cache_dir: Path) -> list[str]:
    """engine.command, else llama-server of quantbench's build (ToolsUnavailable names the command)."""
    from quantbench.gguf.tools import tool_path

    return configured_executable(engine) or [str(tool_path(cache_dir, SERVER))]


def slots(request: ServerRequest) -> int:
    configured = request.engine.get("parallel")
    if configured is not None:
        return int(configured)
    return request.max_concurrency or OPEN_LOOP_SLOTS


def context_per_slot(request: ServerRequest) -> int | None:
    """engine.ctx_per_slot, else the job's longest request with a margin, rounded up; None when
    the job gave no length (the model's own context is then shared among the slots)."""
    configured = request.engine.get("ctx_per_slot")
    if configured is not None:
        return int(configured)
    if request.max_sequence_tokens is None:
        return None
    needed = request.max_sequence_tokens + CONTEXT_MARGIN_TOKENS
    return -(-needed // CONTEXT_STEP) * CONTEXT_STEP


def not_gguf_reason(server: str, precision: DictConfig) -> str | None:
    """Why a server of GGUF files cannot serve this precision; None for a GGUF type."""
    if precision.get("engine") != GGUF_ENGINE:
        return (
            f"{server} serves GGUF files; precision '{precision.name}' is not a GGUF type "
            "(use gguf-q8_0, gguf-q4_k_m, ...)"
        )
    return None


def kv_cache_facts(engine: DictConfig, weights: str) -> dict[str, Any]:
    """kv_cache_dtype and its bytes per token, the shape read from the GGUF file the server loads."""
    from quantbench.gguf.files import kv_shape

    path = Path(weights)
    return kv_cache_dtype.llama_cpp_facts(kv_cache_dtype.configured(engine), kv_shape(path) if path.is_file() else None)


def build_description(executable: str) -> str:
    """`llama-server --version` in one line (the llama.cpp build number and commit, the compiler)."""
    try:
        done = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({type(error).__name__}: {error})"
    return " ".join((done.stdout + done.stderr).split())


class LlamaServer:
    """The serving half of engine=llama.cpp (quantbench.engines.llama_cpp.LlamaCppEngine)."""

    def unavailable_reason(self, engine: DictConfig, cache_dir: Path) -> str | None:
        from quantbench.gguf.tools import ToolsUnavailable

        if engine.get("parallel") is not None and int(engine.parallel) < 1:
            return f"engine.parallel must be at least 1 (null: the job's highest concurrency), got {engine.parallel}"
        if engine.get("ctx_per_slot") is not None and int(engine.ctx_per_slot) < 1:
            return f"engine.ctx_per_slot must be a positive number of tokens (or null), got {engine.ctx_per_slot}"
        reason = kv_cache_dtype.llama_cpp_reason(engine)
        if reason is not None:
            return reason
        command = configured_executable(engine)
        if command is not None:
            return missing_executable_reason(command)
        try:
            server_executable(engine, cache_dir)
        except ToolsUnavailable as error:
            return f"engine=llama.cpp serves with {SERVER}: {error}"
        return None

    def unsupported_reason(self, precision: DictConfig, device: Device) -> str | None:
        return not_gguf_reason("llama.cpp", precision)

    def launch(self, request: ServerRequest) -> ServerLaunch:
        from quantbench.engines.base import ServerLaunch

        if request.cache_dir is None and configured_executable(request.engine) is None:
            raise ValueError(
                "a llama-server launch needs quantbench's cache (ServerRequest.cache_dir) to find the build"
            )
        executable = server_executable(request.engine, Path(request.cache_dir or "."))
        n_slots, per_slot = slots(request), context_per_slot(request)
        # engine=auto's config has none of llama-server's keys: their defaults are the schema's.
        setting = request.engine.get("prefix_caching", LlamaServerEngineConfig.prefix_caching)
        prefix_state = None if setting is None else ("on" if setting else "off")
        prefix_arguments = [] if setting is None else (PREFIX_CACHE_ON if setting else PREFIX_CACHE_OFF)
        command = [
            *executable,
            "--model",
            request.weights,
            "--alias",
            SERVED_MODEL_NAME,
            "--host",
            request.host,
            "--port",
            str(request.port),
            "--parallel",
            str(n_slots),
            "--cont-batching",
            "--no-kv-unified",  # each slot its own ctx_per_slot of KV cache, as recorded
            # 0: the model's own context, shared among the slots
            "--ctx-size",
            str(n_slots * per_slot if per_slot is not None else 0),
            "--n-gpu-layers",
            "999" if request.device.is_cuda else "0",
            "--seed",
            str(request.seed),
            "--metrics",  # Prometheus /metrics, scraped during the levels (off unless asked for)
            *prefix_arguments,
            *kv_cache_dtype.llama_server_arguments(kv_cache_dtype.llama_cpp_type(request.engine)),
        ]
        if request.threads is not None:
            command += ["--threads", str(request.threads), "--threads-batch", str(request.threads)]
        command += [str(argument) for argument in request.engine.get("args") or []]
        return ServerLaunch(
            command=command,
            health_path="/health",  # 503 while the model loads, 200 once it serves
            model_name=SERVED_MODEL_NAME,
            prefix_caching=(
                f"{prefix_state} ({' '.join(prefix_arguments)})"
                if prefix_state
                else "llama-server default (cache_prompt on, a RAM prompt cache of 8192 MiB)"
            ),
            facts={
                "llama_server_slots": n_slots,
                "llama_server_ctx_per_slot": per_slot,
                "llama_server_ctx_size": n_slots * per_slot if per_slot is not None else 0,
                "llama_server_continuous_batching": True,
                "llama_cpp_build": build_description(executable[0]),
                **kv_cache_facts(request.engine, request.weights),
            },
            memory_setting=f"--ctx-size = {n_slots} slots x {per_slot} tokens (engine.parallel, engine.ctx_per_slot)",
        )

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        # max_tokens is llama-server's n_predict; ignore_eos keeps it generating to there.
        return {"ignore_eos": True}
