"""engine=llama-cpp-python: llama-cpp-python's OpenAI-compatible server (`python -m llama_cpp.server`)
on a GGUF precision's file, for machines without quantbench's build of llama-server (engine=llama.cpp).

It runs in quantbench's own environment (the binding quantbench already uses, with its [server]
extra) and serves one request at a time: one llama.cpp context behind a lock, no parallel slots or
continuous batching, so requests above concurrency 1 queue (recorded with every row).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantbench.engines import kv_cache_dtype
from quantbench.engines.llama_server import GGUF_ENGINE, kv_cache_facts, not_gguf_reason

if TYPE_CHECKING:
    from pathlib import Path

    from omegaconf import DictConfig

    from quantbench.engines.base import ServerLaunch, ServerRequest
    from quantbench.runtime.device import Device

ENGINE = "llama-cpp-python"
# What llama-cpp-python[server] adds to the binding (its pyproject's `server` extra).
SERVER_PACKAGES = {
    "uvicorn": "uvicorn",
    "fastapi": "fastapi",
    "pydantic_settings": "pydantic-settings",
    "sse_starlette": "sse-starlette",
    "starlette_context": "starlette-context",
    "yaml": "PyYAML",
}
SERVED_MODEL_NAME = "quantbench"  # --model_alias: what requests name as `model`
ONE_AT_A_TIME = (
    "llama-cpp-python's server runs one request at a time (one llama.cpp context behind a lock; no "
    "parallel slots or continuous batching): requests above concurrency 1 queue"
)


class LlamaCppPythonEngine:
    """llama-cpp-python's server on the precision's GGUF file; serving only (offline GGUF jobs run on
    engine=llama.cpp, through the same binding)."""

    name = ENGINE
    description = "llama-cpp-python's OpenAI-compatible server on GGUF files, one request at a time; serving only"
    offline = False
    starts_server = True
    precision_engines = (GGUF_ENGINE,)  # check_precision_engine: GGUF precisions (engine llama.cpp) run here too

    def unavailable_reason(self, engine: DictConfig, cache_dir: Path) -> str | None:
        import importlib.util

        from quantbench.engines.server_command import configured_executable, missing_executable_reason
        from quantbench.gguf.binding import PINNED_VERSION, unavailable_reason

        if engine.get("prefix_caching") is not None:
            return "llama-cpp-python's server has no prefix-cache option; leave engine.prefix_caching null"
        reason = kv_cache_dtype.llama_cpp_reason(engine)
        if reason is not None:
            return reason
        command = configured_executable(engine)
        if command is not None:
            return missing_executable_reason(command)
        missing = [package for module, package in SERVER_PACKAGES.items() if importlib.util.find_spec(module) is None]
        if missing:
            return (
                f"llama-cpp-python's server needs {', '.join(missing)} "
                f"(pip install 'llama-cpp-python[server]=={PINNED_VERSION}')"
            )
        return unavailable_reason()

    def unsupported_reason(self, precision: DictConfig, device: Device) -> str | None:
        return not_gguf_reason(ENGINE, precision)

    def launch(self, request: ServerRequest) -> ServerLaunch:
        import sys

        from quantbench.engines.base import ServerLaunch
        from quantbench.engines.server_command import configured_executable

        command = [
            *(configured_executable(request.engine) or [sys.executable, "-m", "llama_cpp.server"]),
            "--model",
            request.weights,
            "--model_alias",
            SERVED_MODEL_NAME,
            "--host",
            request.host,
            "--port",
            str(request.port),
            "--n_ctx",
            "0",  # the model's own context length
            "--n_gpu_layers",
            "-1" if request.device.is_cuda else "0",
            "--seed",
            str(request.seed),
            # By default a new request ends the one streaming (it gets [DONE] early): with several
            # users every answer but the last would be cut short.
            "--interrupt_requests",
            "false",
        ]
        if request.threads is not None:
            command += ["--n_threads", str(request.threads), "--n_threads_batch", str(request.threads)]
        cache_type = kv_cache_dtype.llama_cpp_type(request.engine)
        if cache_type is not None:
            # The server's settings take ggml type numbers; flash attention as engine=llama.cpp sets it.
            type_id = str(kv_cache_dtype.ggml_type_id(cache_type))
            command += ["--type_k", type_id, "--type_v", type_id, "--flash_attn", "true"]
        # engine=auto's config has no `args`: the engine's own command line.
        command += [str(argument) for argument in request.engine.get("args") or []]
        return ServerLaunch(
            command=command,
            health_path="/v1/models",  # no /health; this answers once the model is loaded
            model_name=SERVED_MODEL_NAME,
            prefix_caching="llama-cpp-python server default (no prefix-cache option)",
            facts={
                "serves_one_request_at_a_time": True,
                "serving_note": ONE_AT_A_TIME,
                **kv_cache_facts(request.engine, request.weights),
            },
        )

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        # min_tokens masks the end-of-sequence token until max_tokens tokens exist (the server's
        # MinTokensLogitsProcessor), so every request generates exactly max_tokens tokens.
        return {"min_tokens": max_tokens}
