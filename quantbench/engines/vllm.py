"""vLLM's OpenAI-compatible server, `vllm serve` (serving only).

Which vLLM runs, first found: engine.command; the environment `quantbench engines install vllm`
made in quantbench's cache (quantbench/engines/vllm_env.py: vLLM's CPU build); `vllm` on PATH (a
vLLM installed by hand, e.g. the CUDA build on a GPU machine). The row records which, and vLLM's
version (`vllm_executable_from`, `vllm_version`).

How each precision reaches the server:
- fp32/fp16/bf16: `--dtype float32|float16|bfloat16`;
- nf4: `--quantization bitsandbytes`, the in-flight quantization of vLLM releases that have it, NF4
  with double quantization computing in bfloat16 (their model_loader/bitsandbytes_loader.py):
  another nf4 setting is skipped; int8 is skipped (vLLM reads 8-bit bitsandbytes only from
  checkpoints quantized beforehand);
- GPTQ/AWQ: the cached quantized checkpoint; vLLM reads the method from its config and picks its
  kernel (Marlin on a GPU, its CPU WNA16 kernel on a CPU), so no `--quantization` is given.
On a CPU, what vLLM's CPU build (the one `quantbench engines install vllm` makes) refuses is skipped
with vLLM's own words (`cpu_unsupported_reason`): bitsandbytes (its release has none), GPTQ/AWQ other
than 4-bit, and GPTQ/AWQ on a CPU without AVX-512 (its WNA16 kernel is built for AVX-512 only).
Greedy requests with `ignore_eos`, so every request generates exactly max_tokens tokens.

On a CPU vLLM reserves its KV cache when it starts, by default 90 % of the machine's memory
(`--gpu-memory-utilization`, named for GPUs, is the share of RAM there), which leaves no room for
anything else: quantbench sets VLLM_CPU_KVCACHE_SPACE (whole GiB, vLLM's CPU setting, which wins
over `--kv-cache-memory-bytes`) to engine.kv_cache_space_gb and records it. The CPU cores its worker
binds to are vLLM's own choice unless engine.cpu_threads_bind says (VLLM_CPU_OMP_THREADS_BIND).

The KV cache's dtype is engine.kv_cache_dtype (`--kv-cache-dtype`; null: vLLM's `auto`, the model's
dtype): on a CPU vLLM's attention backend takes auto and fp8 only, fp8 only with AVX-512 or AMX, so
anything else is skipped there with vLLM's reason (quantbench/engines/kv_cache_dtype.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantbench.config.schema import VllmEngineConfig
from quantbench.engines import kv_cache_dtype
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
KV_CACHE_VARIABLE = "VLLM_CPU_KVCACHE_SPACE"  # whole GiB of KV cache (vllm/platforms/cpu.py)

# The arguments of the quantizations the server runs itself (in flight, while loading).
QUANTIZATION = {"bnb-nf4": ["--quantization", "bitsandbytes"]}
WNA16_BITS = 4  # vLLM's CPU kernel for GPTQ/AWQ: uint4 and uint4b8 weights (CPUWNA16LinearKernel)
# Where the executable came from (recorded as vllm_executable_from).
FROM_COMMAND, FROM_CACHE, FROM_PATH = "engine.command", "quantbench cache", "PATH"
# Run with the interpreter of a `vllm` console script: the version of the installation it belongs to.
VERSION_SCRIPT = (
    "import importlib.metadata as m\n"
    "for name in ('vllm', 'vllm-cpu'):\n"
    "    try:\n        print(m.version(name)); break\n"
    "    except m.PackageNotFoundError:\n        pass\n"
)


def find_vllm(engine: DictConfig, cache_dir: Path | None) -> tuple[list[str], str] | None:
    """(the command that runs vLLM, where it came from), or None where there is none."""
    from quantbench.engines.vllm_env import installed_env, vllm_executable

    command = configured_executable(engine)
    if command is not None:
        return command, FROM_COMMAND
    entry = installed_env(cache_dir) if cache_dir is not None else None
    if entry is not None:
        return [str(vllm_executable(entry))], FROM_CACHE
    on_path = shutil.which("vllm")
    if on_path is not None:
        return [on_path], FROM_PATH
    return None


def vllm_version(executable: str, source: str, cache_dir: Path | None) -> str | None:
    """vLLM's version: the cache entry's manifest, else asked of the Python that runs a `vllm`
    console script (never by running `vllm`, which may be anything engine.command names); None
    where neither says."""
    from quantbench.cache import read_manifest
    from quantbench.engines.vllm_env import installed_env

    if source == FROM_CACHE and cache_dir is not None:
        entry = installed_env(cache_dir)
        if entry is not None:
            return read_manifest(entry).get("version")
    try:
        with open(executable, "rb") as script:
            first = script.readline(512).decode(errors="replace")
    except OSError:
        return None
    interpreter = first[2:].strip().split()[0] if first.startswith("#!") and first[2:].strip() else None
    if interpreter is None or "python" not in Path(interpreter).name:
        return None
    try:
        done = subprocess.run([interpreter, "-c", VERSION_SCRIPT], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


@functools.lru_cache(maxsize=1)
def cpu_has_avx512() -> bool:
    """Whether this CPU (as the kernel enables it) has AVX-512F: vLLM loads its AVX-512 kernels then."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " avx512f" in line for line in cpuinfo)
    except OSError:
        return False


def cpu_unsupported_reason(precision: DictConfig) -> str | None:
    """What vLLM's CPU build refuses, quoting it (vLLM 0.32.0, run here: docs/results/vllm_cpu.md)."""
    from quantbench.engines.vllm_env import DISTRIBUTION, pinned_version

    build = f"vLLM's CPU build ({DISTRIBUTION} {pinned_version()})"
    backend = str(precision.backend)
    if backend in ("bnb-nf4", "bnb-int8"):
        return (
            f"{build} has no bitsandbytes quantization: `vllm serve --quantization bitsandbytes` stops with "
            "`Unknown quantization method: bitsandbytes` (this vLLM release has no bitsandbytes loader)"
        )
    if backend in ("gptq", "awq") and int(precision.get("bits", WNA16_BITS)) != WNA16_BITS:
        return (
            f"{build} serves {backend.upper()} through its CPUWNA16 kernel, which takes 4-bit weights only "
            f"(`Quant type ... not supported by CPUWNA16, supported types are: (uint4, uint4b8)`); "
            f"{precision.name} has {precision.bits}-bit weights"
        )
    if backend in ("gptq", "awq") and not cpu_has_avx512():
        return (
            f"{build} serves {backend.upper()} through its CPUWNA16 kernel (`cpu_gemm_wna16`), compiled into its "
            "AVX-512 kernels only; on this CPU (no AVX-512) vLLM loads its AVX2 kernels and the server stops at "
            "warm-up with `'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'`"
        )
    return None


def kv_cache_space_gb(engine: DictConfig) -> int | None:
    # engine=auto's config has no vLLM keys: the schema's default.
    value = engine.get("kv_cache_space_gb", VllmEngineConfig.kv_cache_space_gb)
    return None if value is None else int(value)


class VllmEngine:
    name = "vllm"
    description = "vLLM's OpenAI-compatible server (`vllm serve`), serving only"
    offline = False
    starts_server = True

    def unavailable_reason(self, engine: DictConfig, cache_dir: Path) -> str | None:
        from quantbench.engines.vllm_env import missing_env_reason

        space = kv_cache_space_gb(engine)
        if space is not None and space <= 0:
            return (
                f"engine.kv_cache_space_gb must be a positive number of GiB (or null: vLLM's own sizing), got {space}"
            )
        max_model_len = engine.get("max_model_len")
        if max_model_len is not None and int(max_model_len) < 1:
            return f"engine.max_model_len must be a positive number of tokens (or null), got {max_model_len}"
        # The values vLLM has at all; what its CPU backend lacks is the launch's (it knows the device).
        reason = kv_cache_dtype.vllm_reason(engine, on_cpu=False, cpu_has_avx512=True)
        if reason is not None:
            return reason
        command = configured_executable(engine)
        if command is not None:
            return missing_executable_reason(command)
        if find_vllm(engine, cache_dir) is None:
            return missing_env_reason(cache_dir)
        return None

    def unsupported_reason(self, precision: DictConfig, device: Device) -> str | None:
        backend = str(precision.backend)
        if not device.is_cuda:
            reason = cpu_unsupported_reason(precision)
            if reason is not None:
                return reason
        if dtype_arguments(precision) is not None:
            return None
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
        from quantbench.errors import JobSkipped

        engine = request.engine
        cache_reason = kv_cache_dtype.vllm_reason(
            engine, on_cpu=not request.device.is_cuda, cpu_has_avx512=cpu_has_avx512()
        )
        if cache_reason is not None:
            raise JobSkipped(cache_reason)
        found = find_vllm(engine, request.cache_dir)
        if found is None:  # unavailable_reason said so before; a caller that did not ask gets the same words
            from quantbench.engines.vllm_env import missing_env_reason

            raise FileNotFoundError(missing_env_reason(request.cache_dir or Path("~/.cache/quantbench")))
        executable, source = found
        prefix_flag, prefix_state = prefix_caching_flag(engine, "--enable-prefix-caching", "--no-enable-prefix-caching")
        command = [
            *executable,
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
            *kv_cache_dtype.vllm_arguments(kv_cache_dtype.configured(engine)),
        ]
        facts: dict[str, Any] = {
            "vllm_version": vllm_version(executable[0], source, request.cache_dir),
            "vllm_executable_from": source,
            **kv_cache_dtype.vllm_facts(
                kv_cache_dtype.configured(engine),
                kv_cache_dtype.dense_dtype(request.precision),
                kv_cache_dtype.checkpoint_shape(request.weights),
            ),
        }
        environment: dict[str, str] = {}
        memory_setting = None
        max_model_len = engine.get("max_model_len")
        if max_model_len is not None:
            command += ["--max-model-len", str(int(max_model_len))]
        facts["vllm_max_model_len"] = None if max_model_len is None else int(max_model_len)
        if request.max_logprobs is not None:  # the served fidelity's prompt_logprobs (default cap: 20)
            command += ["--max-logprobs", str(int(request.max_logprobs))]
        if not request.device.is_cuda:
            space = kv_cache_space_gb(engine)
            if space is not None:
                # The variable, not --kv-cache-memory-bytes: vLLM's CPU platform lets the variable
                # override the flag, so one set in the user's environment would win over a flag.
                environment[KV_CACHE_VARIABLE] = str(space)
            bind = engine.get("cpu_threads_bind")
            if bind is not None:
                environment["VLLM_CPU_OMP_THREADS_BIND"] = str(bind)
            facts |= {
                # null: vLLM's own sizing, or the variable as this environment sets it
                "kv_cache_space_gb": space if space is not None else os.environ.get(KV_CACHE_VARIABLE),
                "vllm_cpu_threads_bind": str(bind) if bind is not None else "auto (vLLM's default)",
            }
            memory_setting = f"engine.kv_cache_space_gb={space} ({KV_CACHE_VARIABLE})"
        if request.trust_remote_code:
            command.append("--trust-remote-code")
        command += [str(argument) for argument in engine.get("args") or []]
        return ServerLaunch(
            command=command,
            health_path="/health",
            model_name=SERVED_MODEL_NAME,
            prefix_caching=prefix_state or "vLLM default (on in vLLM V1)",
            environment=environment,
            facts=facts,
            memory_setting=memory_setting,
        )

    def request_options(self, max_tokens: int) -> dict[str, Any]:
        return {"ignore_eos": True}
