"""vLLM's OpenAI-compatible server, `vllm serve` (serving only).

Every argument name was checked against vLLM's own CLI source (vllm/engine/arg_utils.py,
vllm/entrypoints/openai/cli_args.py); the recipe has not been run against a real vLLM here
(docs/serving.md). How each precision reaches the server:
- fp32/fp16/bf16: `--dtype float32|float16|bfloat16`;
- nf4: `--quantization bitsandbytes`, vLLM's in-flight quantization, which is NF4 with double
  quantization computing in bfloat16 (vllm/model_executor/model_loader/bitsandbytes_loader.py):
  another nf4 setting is skipped; int8 is skipped (vLLM reads 8-bit bitsandbytes only from
  checkpoints quantized beforehand);
- GPTQ/AWQ: the cached quantized checkpoint; vLLM reads the method from its config and picks its
  kernel (e.g. Marlin), so no `--quantization` is given.
Greedy requests with `ignore_eos`, so every request generates exactly max_tokens tokens.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from quantbench.engines.base import ServerLaunch, ServerRequest
from quantbench.engines.server_command import (
    DENSE_BACKENDS,
    configured_executable,
    dtype_arguments,
    missing_executable_reason,
    precision_arguments,
    prefix_caching_flag,
)
from quantbench.runtime.dtypes import compute_dtype_name

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.runtime.device import Device

SERVED_MODEL_NAME = "quantbench"  # --served-model-name: what requests name as `model`

# The arguments of the quantizations the server runs itself (in flight, while loading).
QUANTIZATION = {"bnb-nf4": ["--quantization", "bitsandbytes"]}


class VllmEngine:
    name = "vllm"
    description = "vLLM's OpenAI-compatible server (`vllm serve`), serving only"
    offline = False
    starts_server = True

    def unavailable_reason(self, engine: DictConfig) -> str | None:
        command = configured_executable(engine)
        if command is not None:
            return missing_executable_reason(command)
        if shutil.which("vllm") is None:
            return (
                "vllm is not installed here (no `vllm` on PATH); "
                "install it, or set engine.command=/path/to/venv/bin/vllm"
            )
        return None

    def unsupported_reason(self, precision: DictConfig, device: Device) -> str | None:
        if dtype_arguments(precision) is not None:
            return None
        backend = str(precision.backend)
        if backend == "bnb-nf4":
            compute = compute_dtype_name(str(precision.compute_dtype), device)
            if precision.quant_type != "nf4" or not precision.double_quant or compute != "bfloat16":
                return (
                    "vLLM's in-flight bitsandbytes quantization is NF4 with double quant computing in bfloat16; "
                    f"{precision.name} asks quant_type={precision.quant_type}, double_quant={precision.double_quant}, "
                    f"compute dtype {compute}"
                )
            return None
        if backend == "bnb-int8":
            return (
                "vLLM quantizes with bitsandbytes in flight to 4-bit only; "
                "8-bit needs a checkpoint quantized beforehand"
            )
        return (
            f"vLLM cannot serve precision '{precision.name}' (backend {backend}); "
            f"it serves {', '.join(DENSE_BACKENDS)}, nf4, gptq and awq"
        )

    def launch(self, request: ServerRequest) -> ServerLaunch:
        engine = request.engine
        prefix_flag, prefix_state = prefix_caching_flag(engine, "--enable-prefix-caching", "--no-enable-prefix-caching")
        command = [
            *(configured_executable(engine) or ["vllm"]),
            "serve",
            request.weights,
            "--host",
            request.host,
            "--port",
            str(request.port),
            "--served-model-name",
            SERVED_MODEL_NAME,
            "--seed",
            str(request.seed),
            # Sampling defaults from vLLM, not from the model's generation_config.json: requests are greedy.
            "--generation-config",
            "vllm",
            *precision_arguments(request.precision, QUANTIZATION),
            *prefix_flag,
        ]
        if request.trust_remote_code:
            command.append("--trust-remote-code")
        command += [str(argument) for argument in engine.get("args") or []]
        return ServerLaunch(
            command=command,
            health_path="/health",
            model_name=SERVED_MODEL_NAME,
            prefix_caching=prefix_state or "vLLM default (on in vLLM V1)",
        )

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        return {"ignore_eos": True}
