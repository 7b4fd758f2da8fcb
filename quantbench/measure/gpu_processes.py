"""Is the GPU shared? Other processes on the job's GPU, listed at the job's start (NVML).

Another process on the GPU takes memory, compute and power: every speed, memory and energy
number of the job would be off, and NVML's energy counter covers the whole board. result.json
records the list (`other_gpu_processes`); `bench.exclusive_gpu` decides what happens then:
`warn` logs it and runs the job, `error` skips the job with the list as its reason (as
optimum-benchmark does).

This process and its parent (the sweep that started an isolated job) are not "other". NVML
reports host process ids: inside a container with its own pid namespace those ids may differ
from NVML's, so the check runs before the job touches CUDA, when this process has no context on
the GPU yet.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from quantbench.errors import JobSkipped
from quantbench.measure.nvml import NvmlUnavailable, nvml, nvml_error_types, nvml_handle

log = logging.getLogger("quantbench")

EXCLUSIVE_GPU_MODES = ("warn", "error")
GB = 1e9


def _process_name(pynvml: Any, pid: int) -> str | None:
    try:
        name = pynvml.nvmlSystemGetProcessName(pid)
    except nvml_error_types():
        return None
    return name.decode() if isinstance(name, bytes) else name


def other_gpu_processes(device_index: int) -> list[dict[str, Any]]:
    """Compute and graphics processes on GPU `device_index` other than this one and the sweep
    process that started it (an isolated job's parent, which may hold a CUDA context of its own);
    NvmlUnavailable without NVML."""
    pynvml = nvml()
    handle = nvml_handle(device_index)
    ours = {os.getpid(), os.getppid()}
    found: dict[int, dict[str, Any]] = {}
    for kind, read in (
        ("compute", pynvml.nvmlDeviceGetComputeRunningProcesses),
        ("graphics", pynvml.nvmlDeviceGetGraphicsRunningProcesses),
    ):
        try:
            processes = read(handle)
        except nvml_error_types():
            continue
        for process in processes:
            if process.pid in ours:
                continue
            entry = found.setdefault(
                process.pid,
                {"pid": process.pid, "name": _process_name(pynvml, process.pid), "kinds": [], "used_memory_gb": None},
            )
            entry["kinds"].append(kind)
            if (
                process.usedGpuMemory is not None
            ):  # None where the driver hides it (e.g. under MIG or without permission)
                entry["used_memory_gb"] = max(entry["used_memory_gb"] or 0.0, process.usedGpuMemory / GB)
    return sorted(found.values(), key=lambda entry: entry["pid"])


def describe(processes: list[dict[str, Any]]) -> str:
    def one(entry: dict[str, Any]) -> str:
        memory = "" if entry["used_memory_gb"] is None else f", {entry['used_memory_gb']:.2f} GB"
        return f"pid {entry['pid']} ({entry['name'] or 'unknown'}{memory})"

    return ", ".join(one(entry) for entry in processes)


def check_exclusive_gpu(mode: str, device_type: str, device_index: int | None) -> dict[str, Any]:
    """What result.json records about other processes on the job's GPU; JobSkipped when
    `mode` is `error` and there are some. Nothing to check on a CPU."""
    if mode not in EXCLUSIVE_GPU_MODES:
        raise JobSkipped(f"bench.exclusive_gpu must be one of {', '.join(EXCLUSIVE_GPU_MODES)}, got {mode!r}")
    if device_type != "cuda":
        return {}
    index = device_index or 0
    try:
        processes = other_gpu_processes(index)
    except NvmlUnavailable as error:
        return {
            "other_gpu_processes": None,
            "other_gpu_process_count": None,
            "other_gpu_processes_note": f"not checked: {error}",
        }
    if processes:
        message = f"GPU {index} is shared with {len(processes)} other process(es): {describe(processes)}"
        if mode == "error":
            raise JobSkipped(f"{message}; bench.exclusive_gpu=error (set bench.exclusive_gpu=warn to run anyway)")
        log.warning("%s; its speed, memory and energy numbers are affected (bench.exclusive_gpu=warn)", message)
    return {
        "other_gpu_processes": processes,
        "other_gpu_process_count": len(processes),
        "other_gpu_processes_note": None,
    }
