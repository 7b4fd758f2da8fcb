"""The hardware facts a job records: price per hour, memory bandwidth, peak compute, and their sources.

The options under `conf/hardware/` (and the hardware options plugins contribute) are the one table
of facts. A job resolves its facts once, on the machine that runs it:

1. what its hardware config sets (`hardware=h100`, `hardware.price_per_hour_usd=2.4`);
2. what it leaves unset (`hardware=auto`, a site option naming only a device), from the option
   whose `match` pattern fits the device name torch reports; on a CPU, from the `cpu` option;
3. on a CPU, the copy bandwidth measured here (once per CPU model, cached in
   `<cache_dir>/hardware/`), and the price per hour as cores x price per core-hour.

The analysis reads what the job wrote and never measures or looks anything up itself, so a report
built on another machine describes the machine that ran the sweep.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import time
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from quantbench.atomic import write_json_atomic
from quantbench.cache import stable_hash
from quantbench.config.schema import HardwareConfig
from quantbench.runtime.device import Device

log = logging.getLogger("quantbench")

# Large enough to defeat the last-level caches of current server CPUs.
_COPY_BUFFER_BYTES = 256 * 1024 * 1024
_COPY_METHOD = f"numpy copy of {_COPY_BUFFER_BYTES // 2**20} MiB, read+write bytes, best of 5"


@dataclass(frozen=True)
class HardwareFacts:
    """What the analysis needs from the hardware, with where each number came from."""

    option: str | None  # the hardware option the table facts came from (None: none matched)
    label: str | None
    price_per_hour_usd: float | None
    price_source: str
    memory_bandwidth_gb_s: float | None
    bandwidth_source: str
    peak_fp16_tflops: float | None
    peak_compute_source: str

    def metrics(self) -> dict[str, Any]:
        """The facts as result.json metrics (flat, so each is a summary column)."""
        return {
            "hardware_option": self.option,
            "hardware_product": self.label,
            "price_per_hour_usd": self.price_per_hour_usd,
            "price_source": self.price_source,
            "memory_bandwidth_gb_s": self.memory_bandwidth_gb_s,
            "bandwidth_source": self.bandwidth_source,
            "peak_fp16_tflops": self.peak_fp16_tflops,
            "peak_compute_source": self.peak_compute_source,
        }


# --- the table ---------------------------------------------------------------------------------


def _option_files() -> list[tuple[str, Any]]:
    """(source, file) of every hardware option: quantbench's own first, then each plugin's in the
    search-path order, as Hydra sees them."""
    from quantbench.config.plugin_configs import config_packages

    files = []
    for source, module in [("quantbench", "quantbench.conf"), *((p.name, p.module) for p in config_packages())]:
        try:
            directory = importlib.resources.files(module) / "hardware"
            found = sorted(
                (item for item in directory.iterdir() if item.name.endswith(".yaml")), key=lambda item: item.name
            )
        except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
            continue  # a plugin without hardware options
        files += [(source, item) for item in found]
    return files


@lru_cache(maxsize=1)
def hardware_options() -> tuple[HardwareConfig, ...]:
    """Every hardware option, read as the HardwareConfig schema (read once per process).

    Read from the files rather than composed through Hydra: the job runs inside a composed app
    and only needs the facts. An option name a plugin repeats keeps quantbench's own, as Hydra's
    search path does; an option that does not fit the schema is left out with a warning.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    options: dict[str, HardwareConfig] = {}
    for source, file in _option_files():
        try:
            values = OmegaConf.to_container(OmegaConf.create(file.read_text()), resolve=False)
            values = {key: value for key, value in (values or {}).items() if key != "defaults"}
            option = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HardwareConfig), values))
        except (OmegaConfBaseException, ValueError, OSError) as error:
            log.warning("hardware option %s from %s left out of the hardware table: %s", file.name, source, error)
            continue
        options.setdefault(option.name, option)
    return tuple(options.values())


def normalized_device_name(device_name: str) -> str:
    """'NVIDIA A100-SXM4-80GB' -> 'nvidia a100 sxm4 80gb': what `match` patterns are searched in."""
    return " ".join(device_name.lower().replace("-", " ").replace("_", " ").split())


def match_option(
    device_type: str, device_name: str | None, options: tuple[HardwareConfig, ...]
) -> HardwareConfig | None:
    """The option for a device: the longest `match` among the options of its kind (CPU or GPU);
    on a CPU that no pattern names, the CPU option without a pattern (`cpu`)."""
    kind = [option for option in options if (option.device == "cpu") == (device_type == "cpu")]
    name = normalized_device_name(device_name or "")
    best, best_length = None, 0
    for option in kind:
        found = re.search(option.match, name) if option.match and name else None
        if found and len(found.group(0)) > best_length:
            best, best_length = option, len(found.group(0))
    if best is None and device_type == "cpu":
        best = next((option for option in kind if not option.match), None)
    return best


# --- CPU bandwidth ------------------------------------------------------------------------------


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
    """The copy bandwidth of this CPU, measured once and then read from the cache."""
    entry = Path(cache_dir).expanduser() / "hardware" / f"cpu-{stable_hash(cpu_name, 12)}.json"
    if entry.is_file():
        try:
            return float(json.loads(entry.read_text())["memory_bandwidth_gb_s"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged entry is measured again and rewritten
    log.info("measuring this CPU's memory bandwidth (once per CPU; cached in %s)", entry.parent)
    bandwidth_gb_s = measure_copy_bandwidth_gb_s()
    write_json_atomic(
        entry,
        {
            "cpu": cpu_name,
            "memory_bandwidth_gb_s": bandwidth_gb_s,
            "method": _COPY_METHOD,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    return bandwidth_gb_s


def local_core_count() -> int:
    """The logical cores this process may run on (its affinity), which is what a job can use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- resolution ---------------------------------------------------------------------------------


def _configured(hardware: Any) -> HardwareConfig:
    """The job's hardware node as the schema (a DictConfig, a dict or already a HardwareConfig)."""
    if isinstance(hardware, HardwareConfig):
        return hardware
    from omegaconf import DictConfig, OmegaConf

    values = OmegaConf.to_container(hardware, resolve=True) if isinstance(hardware, DictConfig) else dict(hardware)
    known = {item.name for item in fields(HardwareConfig)}
    return HardwareConfig(**{key: value for key, value in values.items() if key in known and key != "slurm"})


def _describe(option: HardwareConfig) -> str:
    return f"hardware option '{option.name}'" + (f" ({option.label})" if option.label else "")


def _has_facts(option: HardwareConfig | None) -> bool:
    keys = ("price_per_hour_usd", "price_per_core_hour_usd", "memory_bandwidth_gb_s", "peak_fp16_tflops")
    return option is not None and any(getattr(option, key) is not None for key in keys)


def resolve_hardware_facts(
    hardware: Any,
    device: Device,
    cache_dir: Path | None,
    options: tuple[HardwareConfig, ...] | None = None,
) -> HardwareFacts:
    """Configured facts first, then the matched option's, then a measurement (CPU bandwidth)."""
    configured = _configured(hardware)
    options = hardware_options() if options is None else options
    shipped = next((option for option in options if option.name == configured.name), None)
    matched = match_option(device.type, device.name, options)
    cores = local_core_count()

    def configured_source(key: str, basis: str, arithmetic: str = "") -> str:
        """An unchanged value of a table option names the option and its basis; anything else was
        set for the run, and only the arithmetic done with it is stated."""
        if shipped is not None and getattr(shipped, key) == getattr(configured, key):
            return f"{_describe(shipped)}: {', '.join(filter(None, (arithmetic, basis)))}"
        return f"hardware config (hardware.{key}={getattr(configured, key)})" + (
            f": {arithmetic}" if arithmetic else ""
        )

    def matched_source(key: str, basis: str, arithmetic: str = "") -> str:
        return (
            f"{_describe(matched)}, matched to device '{device.name}': {', '.join(filter(None, (arithmetic, basis)))}"
        )

    def price(option: HardwareConfig, source) -> tuple[float | None, str]:
        note = option.price_note or "price set in the hardware config"
        if option.price_per_hour_usd is not None:
            return option.price_per_hour_usd, source("price_per_hour_usd", note)
        if option.price_per_core_hour_usd is not None and device.type == "cpu":
            arithmetic = f"{cores} cores x ${option.price_per_core_hour_usd}/core-hour"
            return round(cores * option.price_per_core_hour_usd, 4), source("price_per_core_hour_usd", note, arithmetic)
        return None, "unknown: set hardware.price_per_hour_usd"

    def fact(key: str, basis: str) -> tuple[Any, str]:
        if getattr(configured, key) is not None:
            return getattr(configured, key), configured_source(key, basis)
        if matched is not None and getattr(matched, key) is not None:
            return getattr(matched, key), matched_source(key, basis)
        return None, f"unknown: set hardware.{key}"

    price_per_hour_usd, price_source = price(configured, configured_source)
    if price_per_hour_usd is None and matched is not None:
        price_per_hour_usd, price_source = price(matched, matched_source)
    bandwidth, bandwidth_source = fact("memory_bandwidth_gb_s", "datasheet")
    if bandwidth is None and device.type == "cpu" and cache_dir is not None:
        bandwidth = cpu_copy_bandwidth_gb_s(device.name, cache_dir)
        bandwidth_source = f"measured on the machine that ran the job: {_COPY_METHOD} (cached per CPU)"
    peak, peak_source = fact("peak_fp16_tflops", "datasheet, dense FP16/BF16 tensor")
    described = shipped if _has_facts(shipped) else matched
    return HardwareFacts(
        option=described.name if described is not None else None,
        label=configured.label or (described.label if described is not None else None),
        price_per_hour_usd=price_per_hour_usd,
        price_source=price_source,
        memory_bandwidth_gb_s=bandwidth,
        bandwidth_source=bandwidth_source,
        peak_fp16_tflops=peak,
        peak_compute_source=peak_source,
    )
