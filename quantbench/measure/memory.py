"""Memory: what the weights occupy, and the peaks a job reached.

Weight memory is summed from the tensors' own storage, each storage once, including the
quantization state that bitsandbytes keeps beside a weight (absmax, codebooks, SCB): the bytes
the model really holds. `get_memory_footprint()` counts parameters only and misses those.
"""

from __future__ import annotations

import gc
import os
import resource
from typing import Any, Iterable, Iterator

import torch

from quantbench.measure.nvml import NvmlUnavailable, nvml, nvml_error_types, nvml_handle
from quantbench.measure.weight_bits import is_linear_layer, layer_tensors, storage_bytes, unpacked_weight_bytes

GB = 1e9


def _tensors_of(value: Any, depth: int = 0) -> Iterable[torch.Tensor]:
    """Tensors reachable from a weight's quantization-state attributes (a few levels deep)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 3 and value is not None and not isinstance(value, (str, int, float, bool, torch.dtype)):
        attributes = vars(value) if hasattr(value, "__dict__") else {}
        for item in attributes.values():
            yield from _tensors_of(item, depth + 1)


def _weight_tensors(model: torch.nn.Module) -> Iterator[torch.Tensor]:
    """Every tensor that holds the model's weights: parameters, buffers and what quantizers keep beside them."""
    for tensor in [*model.parameters(), *model.buffers()]:
        yield tensor
        for name in ("quant_state", "SCB"):  # bitsandbytes keeps these beside the weight
            yield from _tensors_of(getattr(tensor, name, None))
    for module in model.modules():
        # hqq's HQQLinear keeps each group's scale and zero point in a plain dict, `meta`.
        meta = getattr(module, "meta", None)
        if isinstance(meta, dict):
            yield from (value for value in meta.values() if isinstance(value, torch.Tensor))
        if is_linear_layer(module):  # what bits_per_weight counts of a linear layer, plain attributes included
            yield from layer_tensors(module)


def weight_memory_bytes(model: torch.nn.Module) -> int:
    """The bytes of the weights the model holds; torch.ao's packed layers (no parameters: their
    weight is a C++ object) sized through their `weight()` and `bias()` (weight_bits.py)."""
    packed = sum(unpacked_weight_bytes(module, with_bias=True) for module in model.modules())
    return storage_bytes(_weight_tensors(model)) + packed


def release_memory() -> None:
    """Free what a model that was just dropped still holds: Python cycles, then cached CUDA blocks.

    In-process sweeps load one model after another, and a quality job loads its reference
    precision beside its own model: each must be gone before the next is measured."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def proc_field_bytes(path: str, field: str) -> int | None:
    """A `Field:   N kB` line of a Linux /proc file (status, meminfo) in bytes; None elsewhere."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _linux_peak_rss_bytes() -> int | None:
    return proc_field_bytes("/proc/self/status", "VmHWM")


def _reset_linux_peak_rss() -> bool:
    """Linux resets VmHWM (the peak RSS) when '5' is written to clear_refs."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def nvml_process_memory_bytes(device_index: int) -> int | None:
    """GPU memory NVML attributes to this process (CUDA context included); None without NVML."""
    try:
        pynvml = nvml()
        processes = pynvml.nvmlDeviceGetComputeRunningProcesses(nvml_handle(device_index))
    except (NvmlUnavailable, *nvml_error_types()):
        return None
    for process in processes:
        if process.pid == os.getpid():
            return int(process.usedGpuMemory or 0)
    return 0


class MemoryTracker:
    """Reset before loading the model; read after the measurement."""

    def __init__(self, device_type: str, device_index: int | None = None):
        self.cuda = device_type == "cuda"
        self.index = device_index or 0
        self.rss_reset = False

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.index)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.index)
        self.rss_reset = _reset_linux_peak_rss()

    def peaks(self) -> dict[str, Any]:
        rss = _linux_peak_rss_bytes()
        if rss is None:  # not Linux: the process-lifetime peak (kilobytes on Linux, bytes on macOS)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if os.uname().sysname == "Darwin" else 1024)
        metrics: dict[str, Any] = {
            "peak_rss_gb": rss / GB,
            "peak_rss_scope": "job" if self.rss_reset else "process",
            "peak_allocated_gb": None,
            "peak_reserved_gb": None,
            "nvml_process_memory_gb": None,
        }
        if self.cuda:
            torch.cuda.synchronize(self.index)
            metrics["peak_allocated_gb"] = torch.cuda.max_memory_allocated(self.index) / GB
            metrics["peak_reserved_gb"] = torch.cuda.max_memory_reserved(self.index) / GB
            nvml = nvml_process_memory_bytes(self.index)
            metrics["nvml_process_memory_gb"] = None if nvml is None else nvml / GB
        # The headline number: accelerator memory on a GPU, resident host memory on a CPU.
        metrics["peak_memory_gb"] = metrics["peak_allocated_gb"] if self.cuda else metrics["peak_rss_gb"]
        return metrics
