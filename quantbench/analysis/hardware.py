"""Known accelerators: memory bandwidth, memory and a default price per hour.

`hardware=auto` leaves price and bandwidth unset in the job config; the analysis fills them here
from the device name the job recorded. Prices are documented defaults (typical on-demand rate for
one GPU at large clouds and GPU clouds, mid-2025, USD): they are there so that cost columns exist
at all, and are meant to be overridden with `hardware.price_per_hour=...` for your own contract.
Bandwidths and memory sizes are the vendors' datasheet numbers (decimal GB).

On a CPU there is no datasheet number that holds for a given machine, so the copy bandwidth is
measured once (numpy, a buffer far larger than the caches) and cached under
`<cache_dir>/hardware/`. The CPU price is an estimate per logical core, also documented below.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quantbench.cache import stable_hash
from quantbench.results import write_json_atomic

if TYPE_CHECKING:
    import polars as pl

    from quantbench.analysis.sweep import Sweep


@dataclass(frozen=True)
class GpuSpec:
    key: str  # the hardware config option of the same GPU (conf/hardware/<key>.yaml)
    label: str
    pattern: str  # a regular expression matched against the lower-cased device name
    memory_bandwidth_gb_s: float
    memory_gb: float
    price_per_hour: float
    price_note: str


# Most specific first: the first pattern that matches a device name wins.
KNOWN_GPUS: tuple[GpuSpec, ...] = (
    GpuSpec("h200", "NVIDIA H200 141GB", r"h200", 4800, 141, 3.50, "GPU-cloud on-demand, one GPU"),
    GpuSpec("h100-pcie", "NVIDIA H100 PCIe 80GB", r"h100.*pcie", 2000, 80, 2.50, "GPU-cloud on-demand, one GPU"),
    GpuSpec("h100", "NVIDIA H100 SXM 80GB", r"h100", 3350, 80, 3.00, "GPU-cloud on-demand, one GPU"),
    GpuSpec("a100", "NVIDIA A100 80GB", r"a100.*80", 2039, 80, 1.80, "GPU-cloud on-demand, one GPU"),
    GpuSpec("a100-40gb", "NVIDIA A100 40GB", r"a100", 1555, 40, 1.30, "GPU-cloud on-demand, one GPU"),
    GpuSpec("a10g", "NVIDIA A10G 24GB", r"a10g", 600, 24, 1.01, "AWS g5.xlarge on-demand"),
    GpuSpec("a10", "NVIDIA A10 24GB", r"\ba10\b", 600, 24, 0.75, "GPU-cloud on-demand, one GPU"),
    GpuSpec("l40s", "NVIDIA L40S 48GB", r"l40s", 864, 48, 1.00, "GPU-cloud on-demand, one GPU"),
    GpuSpec("l4", "NVIDIA L4 24GB", r"\bl4\b", 300, 24, 0.80, "AWS g6.xlarge on-demand"),
    GpuSpec("t4", "NVIDIA T4 16GB", r"\bt4\b", 320, 16, 0.53, "AWS g4dn.xlarge on-demand"),
    GpuSpec("v100", "NVIDIA V100 16GB", r"v100", 900, 16, 3.06, "AWS p3.2xlarge on-demand"),
    GpuSpec("rtx4090", "NVIDIA GeForce RTX 4090 24GB", r"rtx 4090", 1008, 24, 0.40, "community GPU cloud"),
    GpuSpec("rtx3090", "NVIDIA GeForce RTX 3090 24GB", r"rtx 3090", 936, 24, 0.25, "community GPU cloud"),
    GpuSpec("rtx2080ti", "NVIDIA GeForce RTX 2080 Ti 11GB", r"rtx 2080 ti", 616, 11, 0.20, "community GPU cloud"),
    GpuSpec("rtx-a6000", "NVIDIA RTX A6000 48GB", r"rtx a6000", 768, 48, 0.80, "GPU-cloud on-demand, one GPU"),
    GpuSpec("quadro-rtx8000", "NVIDIA Quadro RTX 8000 48GB", r"rtx 8000", 672, 48, 0.60, "GPU-cloud on-demand, one GPU"),
)

# A cloud CPU instance costs roughly this per logical core (vCPU) and hour: AWS c7i on-demand,
# us-east-1 ($0.0893/h for 2 vCPU). The CPU price is this rate times the cores the job saw.
CPU_PRICE_PER_CORE_HOUR = 0.0446

# Large enough to defeat the last-level caches of current server CPUs.
_COPY_BUFFER_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class HardwareNumbers:
    """What the analysis needs from the hardware, with where each number came from."""

    price_per_hour: float | None
    memory_bandwidth_gb_s: float | None
    memory_gb: float | None
    price_source: str
    bandwidth_source: str


def lookup_gpu(device_name: str | None) -> GpuSpec | None:
    """The table entry whose pattern matches `device_name` (e.g. 'NVIDIA H100 80GB HBM3')."""
    if not device_name:
        return None
    normalized = " ".join(device_name.lower().replace("-", " ").replace("_", " ").split())
    for spec in KNOWN_GPUS:
        if re.search(spec.pattern.replace("-", " "), normalized):
            return spec
    return None


def gpu_by_key(key: str) -> GpuSpec | None:
    return next((spec for spec in KNOWN_GPUS if spec.key == key), None)


def measure_copy_bandwidth_gb_s(buffer_bytes: int = _COPY_BUFFER_BYTES, repeats: int = 5) -> float:
    """Sustained copy bandwidth of this machine's memory: read plus write bytes per second.

    The best of a few repeats is kept, because other processes can only make a copy slower.
    """
    import numpy as np

    source = np.ones(buffer_bytes // 8, dtype=np.float64)
    target = np.empty_like(source)
    np.copyto(target, source)  # first touch: page faults are not bandwidth
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best_s = min(best_s, time.perf_counter() - started)
    return 2 * source.nbytes / best_s / 1e9


def cpu_copy_bandwidth_gb_s(cpu_name: str, cache_dir: Path) -> float:
    """The measured copy bandwidth of this CPU, measured once and then read from the cache."""
    entry = Path(cache_dir).expanduser() / "hardware" / f"cpu-{stable_hash(cpu_name, 12)}.json"
    if entry.is_file():
        try:
            return float(json.loads(entry.read_text())["memory_bandwidth_gb_s"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged entry is measured again and rewritten
    bandwidth_gb_s = measure_copy_bandwidth_gb_s()
    write_json_atomic(
        entry,
        {
            "cpu": cpu_name,
            "memory_bandwidth_gb_s": bandwidth_gb_s,
            "method": f"numpy copy of {_COPY_BUFFER_BYTES // 2**20} MiB, read+write bytes, best of 5",
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    return bandwidth_gb_s


def local_core_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_hardware(
    *,
    device_type: str | None,
    device_name: str | None,
    configured_price_per_hour: float | None = None,
    configured_bandwidth_gb_s: float | None = None,
    configured_memory_gb: float | None = None,
    cpu_count: int | None = None,
    cache_dir: Path | None = None,
) -> HardwareNumbers:
    """Configured numbers win; then the GPU table; on a CPU, a measurement and a core-based price.

    The CPU bandwidth is measured only when `device_name` is this machine's CPU: a report built on
    another machine must not attribute this machine's bandwidth to the one that ran the sweep.
    """
    from quantbench.device import cpu_model_name

    price, price_source = configured_price_per_hour, "hardware config"
    bandwidth, bandwidth_source = configured_bandwidth_gb_s, "hardware config"
    memory_gb = configured_memory_gb
    gpu = lookup_gpu(device_name) if device_type != "cpu" else None
    if gpu is not None:
        if price is None:
            price, price_source = gpu.price_per_hour, f"default for {gpu.label} ({gpu.price_note})"
        if bandwidth is None:
            bandwidth, bandwidth_source = gpu.memory_bandwidth_gb_s, f"datasheet, {gpu.label}"
        memory_gb = memory_gb if memory_gb is not None else gpu.memory_gb
    elif device_type == "cpu":
        if price is None and cpu_count:
            price = round(cpu_count * CPU_PRICE_PER_CORE_HOUR, 4)
            price_source = f"estimate: {cpu_count} cores x ${CPU_PRICE_PER_CORE_HOUR}/core-hour (AWS c7i on-demand)"
        if bandwidth is None and cache_dir is not None and device_name and device_name == cpu_model_name():
            bandwidth = cpu_copy_bandwidth_gb_s(device_name, cache_dir)
            bandwidth_source = "measured: numpy copy bandwidth of this CPU (cached)"
    if price is None:
        price_source = "unknown: set hardware.price_per_hour"
    if bandwidth is None:
        bandwidth_source = "unknown: set hardware.memory_bandwidth_gb_s"
    return HardwareNumbers(price, bandwidth, memory_gb, price_source, bandwidth_source)


def with_hardware_numbers(sweep: "Sweep", cache_dir: Path | None) -> "pl.DataFrame":
    """The sweep's ok rows with price_per_hour, memory_bandwidth_gb_s and their sources filled in.

    Rows of the same hardware resolve once, so a CPU is measured at most once per report.
    """
    import polars as pl

    frame = sweep.ok
    resolved: dict[tuple, HardwareNumbers] = {}
    rows = []
    for row in frame.iter_rows(named=True):
        result = sweep.result(row.get("job_dir")) or {}
        environment = result.get("environment") or {}
        device_type = environment.get("device_type") or ("cpu" if row.get("hardware") == "cpu" else None)
        device_name = environment.get("device_name") or row.get("device")
        hardware_config = (result.get("config") or {}).get("hardware") or {}
        key = (
            device_type,
            device_name,
            row.get("price_per_hour"),
            row.get("memory_bandwidth_gb_s"),
            environment.get("cpu_count"),
        )
        if key not in resolved:
            resolved[key] = resolve_hardware(
                device_type=device_type,
                device_name=device_name,
                configured_price_per_hour=row.get("price_per_hour"),
                configured_bandwidth_gb_s=row.get("memory_bandwidth_gb_s"),
                configured_memory_gb=hardware_config.get("memory_gb"),
                cpu_count=environment.get("cpu_count"),
                cache_dir=cache_dir,
            )
        numbers = resolved[key]
        rows.append(
            {
                "price_per_hour": numbers.price_per_hour,
                "memory_bandwidth_gb_s": numbers.memory_bandwidth_gb_s,
                "price_source": numbers.price_source,
                "bandwidth_source": numbers.bandwidth_source,
            }
        )
    filled = pl.DataFrame(
        rows,
        schema={
            "price_per_hour": pl.Float64,
            "memory_bandwidth_gb_s": pl.Float64,
            "price_source": pl.Utf8,
            "bandwidth_source": pl.Utf8,
        },
    )
    return frame.drop([column for column in filled.columns if column in frame.columns]).hstack(filled)
