"""transformers: `generate()` in quantbench's process offline (quantbench/engines/transformers_offline.py), and
`transformers serve` with continuous batching when serving.

How each precision reaches the server (`transformers serve --help`, transformers 5.x):
- fp32/fp16/bf16: `--dtype`;
- bitsandbytes: `--quantization bnb-4bit` (a fixed NF4, double-quant, float32-compute config) or
  `bnb-8bit` (LLM.int8() with its default threshold): a precision set otherwise (fp4, another
  compute dtype, other skipped modules) is one the server cannot express, so the job is skipped;
- GPTQ/AWQ: the cached quantized checkpoint directory (quantbench/engines/weights.py).

Continuous batching reserves a share of the device's memory for its KV cache when it starts
(transformers' default: 60 % of RAM on a CPU, 90 % of a GPU's), so a second server on the same
machine (another sweep, a test beside it) dies for lack of memory: quantbench passes
`engine.kv_cache_memory_fraction` as `--cb-max-memory-percent` (a fraction, despite its name) and
records it. Its cache holds keys and values in the model's dtype, with no setting for another:
engine.kv_cache_dtype other than null (or `model`) skips a serving job with that reason
(offline, transformers' quantized cache: quantbench/engines/transformers_offline.py).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import TYPE_CHECKING, Any

from quantbench.config.schema import TransformersEngineConfig
from quantbench.engines.base import ServerLaunch, ServerRequest
from quantbench.engines.kv_cache_dtype import (
    checkpoint_shape,
    dense_dtype,
    model_dtype_facts,
    transformers_serve_reason,
)
from quantbench.engines.server_command import (
    DENSE_BACKENDS,
    configured_executable,
    dtype_arguments,
    missing_executable_reason,
    precision_arguments,
)
from quantbench.runtime.dtypes import compute_dtype_name

if TYPE_CHECKING:
    from pathlib import Path

    from omegaconf import DictConfig

    from quantbench.engines.offline import OfflineJob, OfflineRunner
    from quantbench.runtime.device import Device

SERVING_PACKAGES = ("fastapi", "uvicorn", "openai")  # what transformers[serving] adds
# The server's fixed bitsandbytes configs (transformers/cli/serving/model_manager.py).
SERVER_4BIT = {"quant_type": "nf4", "double_quant": True, "compute_dtype": "float32", "skip_modules": ["lm_head"]}
SERVER_8BIT = {"threshold": 6.0, "skip_modules": ["lm_head"]}


def _mismatch(wanted: dict[str, Any], given: dict[str, Any]) -> str | None:
    differing = [f"{key}={given[key]!r} (server: {value!r})" for key, value in wanted.items() if given[key] != value]
    return ", ".join(differing) or None


# The arguments of the quantizations the server runs itself.
QUANTIZATION = {"bnb-nf4": ["--quantization", "bnb-4bit"], "bnb-int8": ["--quantization", "bnb-8bit"]}


class TransformersEngine:
    name = "transformers"
    description = "transformers: generate() in process offline, `transformers serve` (continuous batching) when serving"
    offline = True
    starts_server = True

    def offline_runner(self, job: OfflineJob) -> OfflineRunner:
        from quantbench.engines.transformers_offline import TransformersRunner

        return TransformersRunner(job)

    def unavailable_reason(self, engine: DictConfig, cache_dir: Path) -> str | None:
        fraction = engine.get("kv_cache_memory_fraction")
        if fraction is not None and not 0 < float(fraction) <= 1:
            return f"engine.kv_cache_memory_fraction must be in (0, 1], a share of the device's memory; got {fraction}"
        if engine.get("prefix_caching") is not None:
            return "`transformers serve` has no prefix-cache option; leave engine.prefix_caching null"
        reason = transformers_serve_reason(engine)
        if reason is not None:
            return reason
        command = configured_executable(engine)
        if command is not None:
            return missing_executable_reason(command)
        missing = [name for name in SERVING_PACKAGES if importlib.util.find_spec(name) is None]
        if missing:
            return f"`transformers serve` needs {', '.join(missing)} (pip install 'transformers[serving]')"
        return None

    def unsupported_reason(self, precision: DictConfig, device: Device) -> str | None:
        if dtype_arguments(precision) is not None:
            return None
        backend = str(precision.backend)
        if backend == "bnb-nf4":
            given = {
                "quant_type": precision.quant_type,
                "double_quant": bool(precision.double_quant),
                "compute_dtype": compute_dtype_name(str(precision.compute_dtype), device),
                "skip_modules": list(precision.skip_modules),
            }
            differing = _mismatch(SERVER_4BIT, given)
            return (
                differing
                and "`transformers serve --quantization bnb-4bit` is NF4, double quant, float32 compute, lm_head kept; "
                f"{precision.name} asks {differing}"
            )
        if backend == "bnb-int8":
            given = {"threshold": float(precision.threshold), "skip_modules": list(precision.skip_modules)}
            differing = _mismatch(SERVER_8BIT, given)
            return (
                differing
                and "`transformers serve --quantization bnb-8bit` is LLM.int8() with threshold 6.0, lm_head kept; "
                f"{precision.name} asks {differing}"
            )
        return (
            f"`transformers serve` cannot load precision '{precision.name}' (backend {backend}); "
            f"it serves {', '.join(DENSE_BACKENDS)}, nf4, int8, gptq and awq"
        )

    def launch(self, request: ServerRequest) -> ServerLaunch:
        executable = configured_executable(request.engine) or [sys.executable, "-m", "transformers.cli.transformers"]
        # engine=auto's config has no key of its own: the schema's default.
        kv_cache_fraction = request.engine.get(
            "kv_cache_memory_fraction", TransformersEngineConfig.kv_cache_memory_fraction
        )
        command = [
            *executable,
            "serve",
            request.weights,
            "--continuous-batching",  # off by default; a server without it runs one request at a time
            "--host",
            request.host,
            "--port",
            str(request.port),
            "--device",
            request.device.torch_device,
            *([] if kv_cache_fraction is None else ["--cb-max-memory-percent", str(float(kv_cache_fraction))]),
            "--default-seed",
            str(request.seed),
            *precision_arguments(request.precision, QUANTIZATION),
        ]
        if request.trust_remote_code:
            command.append("--trust-remote-code")
        command += [str(argument) for argument in request.engine.get("args") or []]
        # The server pins the model it was started with; requests name it by the same path.
        return ServerLaunch(
            command=command,
            health_path="/health",
            model_name=request.weights,
            prefix_caching="transformers serve default (no prefix-cache option)",
            facts={
                "kv_cache_memory_fraction": None if kv_cache_fraction is None else float(kv_cache_fraction),
                **model_dtype_facts(
                    dense_dtype(request.precision), checkpoint_shape(request.weights), "model dtype, serve's only"
                ),
            },
            memory_setting=f"engine.kv_cache_memory_fraction={kv_cache_fraction}",
        )

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        # The request's generation config replaces the model's: greedy, and no end-of-sequence token
        # (-1 matches none, for continuous batching and generate() alike), so every request
        # generates exactly max_tokens tokens.
        return {"generation_config": json.dumps({"max_new_tokens": max_tokens, "do_sample": False, "eos_token_id": -1})}
