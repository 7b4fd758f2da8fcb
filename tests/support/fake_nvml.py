"""A stand-in for NVML: the real pynvml module with its device calls replaced (monkeypatch),
so the energy counter, the telemetry probe and the shared-GPU check run their real code here."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml


@dataclass
class FakeGpu:
    energy_mj: int = 1_000_000  # the counter since the driver loaded
    power_mw: int = 350_000
    sm_clock_mhz: int = 1980
    memory_clock_mhz: int = 2619
    clock_event_reasons: int = 0
    processes: list[SimpleNamespace] = field(default_factory=list)  # compute processes
    graphics: list[SimpleNamespace] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    energy_step_mj: int = 0  # added to the counter at every read (a GPU drawing power)

    def read_energy(self, handle: object) -> int:
        self.energy_mj += self.energy_step_mj
        return self.energy_mj


def install(monkeypatch, gpu: FakeGpu) -> FakeGpu:
    def handle(index: int) -> str:
        if index != 0:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return "gpu0"

    calls = {
        "nvmlInit": lambda: None,
        "nvmlDeviceGetHandleByIndex": handle,
        "nvmlDeviceGetTotalEnergyConsumption": gpu.read_energy,
        "nvmlDeviceGetPowerUsage": lambda h: gpu.power_mw,
        "nvmlDeviceGetClockInfo": lambda h, kind: (
            gpu.sm_clock_mhz if kind == pynvml.NVML_CLOCK_SM else gpu.memory_clock_mhz
        ),
        "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=97, memory=60),
        "nvmlDeviceGetTemperature": lambda h, sensor: 61,
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(used=12_000_000_000, total=141_000_000_000),
        "nvmlDeviceGetCurrentClocksEventReasons": lambda h: gpu.clock_event_reasons,
        "nvmlDeviceGetComputeRunningProcesses": lambda h: list(gpu.processes),
        "nvmlDeviceGetGraphicsRunningProcesses": lambda h: list(gpu.graphics),
        "nvmlSystemGetProcessName": lambda pid: gpu.names.get(pid, "python3"),
    }
    for name, call in calls.items():
        monkeypatch.setattr(pynvml, name, call)
    return gpu


def process(pid: int, used_bytes: int | None) -> SimpleNamespace:
    return SimpleNamespace(pid=pid, usedGpuMemory=used_bytes)
