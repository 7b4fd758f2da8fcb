"""Energy from hardware counters: NVML on an NVIDIA GPU, Linux RAPL on a CPU, nothing else.

A counter is read right before and right after each timed region (the offline scenario,
quantbench.scenarios.offline) and, for a serving job, sampled through its load levels (quantbench.measure.
telemetry). Where no counter can be read, the energy columns stay empty and
`energy_unavailable_reason` says why: energy is never estimated from a TDP or a power limit,
because such an estimate would rank precisions by speed alone and call it energy.

- NVML: `nvmlDeviceGetTotalEnergyConsumption`, millijoules since the driver loaded (Volta and
  newer), the whole board: other processes on the GPU count too (see quantbench.measure.
  gpu_processes).
- RAPL: `/sys/class/powercap/intel-rapl:N/energy_uj` (package N) and its `dram` subdomain where
  present; each counter wraps at its `max_energy_range_uj`. Package domains cover the whole
  socket, not this process. Since Linux 5.10 `energy_uj` is readable by root only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from quantbench.measure.nvml import NvmlUnavailable, nvml, nvml_error_types, nvml_handle

POWERCAP_ROOT = Path("/sys/class/powercap")
J_PER_KWH = 3.6e6
# Every energy column a job writes, empty where no counter exists (the collector and the report
# read these names).
ENERGY_COLUMNS = (
    "energy_j",
    "energy_per_token_j",
    "avg_power_w",
    "tokens_per_kwh",
    "energy_source",
    "energy_unavailable_reason",
)


class EnergyCounter(Protocol):
    source: str  # "nvml" or "rapl": the energy_source column
    scope: str  # what the counter covers, in words (result.json's energy_scope)

    def read_j(self) -> float:
        """Joules consumed since the counter was opened (monotonic; wrap-around handled)."""
        ...


class NvmlEnergyCounter:
    source = "nvml"

    def __init__(self, index: int):
        self._pynvml = nvml()
        self._handle = nvml_handle(index)
        self.scope = f"GPU {index} board (NVML total energy; every process on the GPU)"
        try:
            self._start_mj = self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except nvml_error_types() as error:
            raise NvmlUnavailable(f"NVML cannot read the energy counter of GPU {index}: {error}") from None

    def read_j(self) -> float:
        return (self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._start_mj) / 1e3


@dataclass
class RaplDomain:
    name: str  # e.g. "package-0", "dram"
    energy_file: Path
    max_range_uj: int
    last_uj: int
    total_uj: int = 0

    def advance(self) -> None:
        """Add the energy since the last read; a smaller value than last time means the counter wrapped."""
        now_uj = int(self.energy_file.read_text())
        delta = now_uj - self.last_uj
        if delta < 0:
            delta += self.max_range_uj
        self.total_uj += delta
        self.last_uj = now_uj


class RaplEnergyCounter:
    """Package and DRAM domains of every socket. The core/uncore subdomains are inside the package
    figure and are not added again; DRAM is outside it on the parts that report it."""

    source = "rapl"

    def __init__(self, domains: list[RaplDomain]):
        self.domains = domains
        self.scope = "CPU " + " + ".join(domain.name for domain in domains) + " (RAPL; the whole socket, every process)"

    def read_j(self) -> float:
        for domain in self.domains:
            domain.advance()
        return sum(domain.total_uj for domain in self.domains) / 1e6


def _open_rapl_domain(directory: Path) -> RaplDomain | None:
    """A domain whose counter this process can read, else None."""
    try:
        name = (directory / "name").read_text().strip()
        max_range_uj = int((directory / "max_energy_range_uj").read_text())
        last_uj = int((directory / "energy_uj").read_text())
    except (OSError, ValueError):
        return None
    return RaplDomain(name, directory / "energy_uj", max_range_uj, last_uj)


def open_rapl(root: Path = POWERCAP_ROOT) -> RaplEnergyCounter:
    """The readable package domains under `root` and their DRAM subdomains; ValueError saying why there are none."""
    packages = sorted(root.glob("intel-rapl:*")) if root.is_dir() else []
    packages = [path for path in packages if path.name.count(":") == 1]  # intel-rapl:N, not intel-rapl:N:M
    domains: list[RaplDomain] = []
    for package in packages:
        domain = _open_rapl_domain(package)
        if domain is None or not domain.name.startswith("package"):
            continue
        domains.append(domain)
        for sub in sorted(package.glob(f"{package.name}:*")):
            subdomain = _open_rapl_domain(sub)
            if subdomain is not None and subdomain.name == "dram":
                subdomain.name = f"dram-{domain.name.removeprefix('package-')}"
                domains.append(subdomain)
    if domains:
        return RaplEnergyCounter(domains)
    if not root.is_dir():
        raise ValueError(f"{root} does not exist (no RAPL driver in this kernel or VM)")
    if not packages:
        raise ValueError(f"{root} has no intel-rapl:N package domain")
    raise ValueError(f"{root} has no readable RAPL domain (energy_uj is root-only since Linux 5.10)")


def open_energy_counter(
    device_type: str, device_index: int | None = None, powercap_root: Path = POWERCAP_ROOT
) -> tuple[EnergyCounter | None, str | None]:
    """The counter for a job on this device, or (None, why there is none).

    A GPU job reads the GPU's NVML counter (the host CPU's RAPL would measure the wrong chip); a
    CPU job reads RAPL."""
    if device_type == "cuda":
        try:
            return NvmlEnergyCounter(device_index or 0), None
        except NvmlUnavailable as error:
            return None, f"no NVML energy counter: {error}"
    try:
        return open_rapl(powercap_root), None
    except ValueError as rapl_error:
        return None, f"no NVML device (the job runs on the {device_type}) and {rapl_error}"


def energy_metrics(
    energy_j: float | None, seconds: float, tokens: int, counter: EnergyCounter | None, reason: str | None
) -> dict[str, Any]:
    """The energy columns of a timed phase (or a load level): joules, per token, mean power,
    tokens per kWh; all None with the reason where there was no counter."""
    if counter is None or energy_j is None:
        return {column: None for column in ENERGY_COLUMNS} | {
            "energy_unavailable_reason": reason or "no energy counter was read",
            "energy_scope": None,
        }
    return {
        "energy_j": energy_j,
        "energy_per_token_j": energy_j / tokens if tokens else None,
        "avg_power_w": energy_j / seconds if seconds > 0 else None,
        "tokens_per_kwh": tokens / (energy_j / J_PER_KWH) if energy_j > 0 else None,
        "energy_source": counter.source,
        "energy_unavailable_reason": None,
        "energy_scope": counter.scope,
    }


class EnergyMeter:
    """Reads around each timed region of a job: `before()` then `after()` gives that region's joules.

    Per-region readings go into iterations.parquet (energy_j), so the statistics against the
    baseline get one energy sample per iteration, like the latency."""

    def __init__(self, device_type: str, device_index: int | None = None, powercap_root: Path = POWERCAP_ROOT):
        self.counter, self.reason = open_energy_counter(device_type, device_index, powercap_root)
        self._before_j: float | None = None

    def before(self) -> None:
        self._before_j = self.counter.read_j() if self.counter is not None else None

    def after(self) -> float | None:
        """Joules since `before()`; None without a counter."""
        if self.counter is None or self._before_j is None:
            return None
        return self.counter.read_j() - self._before_j

    def metrics(self, region_energies_j: list[float | None], seconds: float, tokens: int) -> dict[str, Any]:
        known = [value for value in region_energies_j if value is not None]
        total = sum(known) if self.counter is not None and known else None
        return energy_metrics(total, seconds, tokens, self.counter, self.reason)
