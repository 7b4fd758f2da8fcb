"""Telemetry: what the hardware did during the timed phase, sampled about 10 times a second.

A background thread samples, on an NVIDIA GPU (NVML): board power, SM and memory clocks,
utilisation, temperature, memory used and the clock-event ("throttle") reasons; on every device:
the measured process's CPU time and resident memory (psutil). The rows go to telemetry.parquet
in the job directory; result.json gets a summary (samples, clocks, whether the clocks were held
down by a power or thermal limit), which the report flags.

The thread holds the GIL only for the few microseconds of each read; NVML and psutil calls
release it. One sample is taken at the start and one at the end, so even a short phase has both.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from quantbench.measure.energy import EnergyCounter
from quantbench.measure.nvml import NvmlUnavailable, nvml, nvml_error_types, nvml_handle

log = logging.getLogger("quantbench")

SAMPLE_INTERVAL_S = 0.1
GB = 1e9
# NVML clock-event reasons (nvmlClocksEventReason*): the ones that hold the clocks below what the
# load asks for. Idle, application clocks, sync boost and display clocks are not limits.
THROTTLE_REASONS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
THROTTLE_MASK = sum(THROTTLE_REASONS)
# Phases sampled but left out of the summary: only the measured phases say how the clocks held.
UNMEASURED_PHASES = ("warm-up", "start-up")


def throttle_names(mask: int | None) -> list[str]:
    return [name for bit, name in THROTTLE_REASONS.items() if mask and mask & bit]


class GpuProbe:
    """One NVML reading of a GPU; a value the board does not report is None."""

    def __init__(self, index: int):
        self.pynvml = nvml()
        self.handle = nvml_handle(index)
        self.errors = nvml_error_types()
        # nvidia-ml-py before 12.535 names it ...ClocksThrottleReasons: the same bit mask.
        self.clock_reasons = (
            getattr(self.pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
            or self.pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
        )

    def _read(self, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except self.errors:
            return None

    def sample(self) -> dict[str, Any]:
        pynvml, handle, read = self.pynvml, self.handle, self._read
        power_mw = read(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
        utilisation = read(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
        memory = read(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
        return {
            "power_w": None if power_mw is None else power_mw / 1e3,
            "sm_clock_mhz": read(lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
            "memory_clock_mhz": read(lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM)),
            "gpu_util_pct": None if utilisation is None else utilisation.gpu,
            "memory_util_pct": None if utilisation is None else utilisation.memory,
            "temperature_c": read(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
            "gpu_memory_used_gb": None if memory is None else memory.used / GB,
            "clock_event_reasons": read(lambda: self.clock_reasons(handle)),
        }


class ProcessProbe:
    """CPU time (user + system, children included) and resident memory of one process."""

    def __init__(self, pid: int):
        import psutil

        self.process = psutil.Process(pid)

    def sample(self) -> dict[str, Any]:
        import psutil

        try:
            with self.process.oneshot():
                times = self.process.cpu_times()
                rss = self.process.memory_info().rss
        except psutil.Error:  # the process ended (a server that exited): no values, not a crash
            return {"cpu_time_s": None, "rss_gb": None}
        return {
            "cpu_time_s": times.user + times.system + times.children_user + times.children_system,
            "rss_gb": rss / GB,
        }


class TelemetrySampler:
    """`with TelemetrySampler(...) as sampler:` around a timed phase; then `write(job_dir)` and `summary()`.

    `pid`: the process whose CPU time and memory are sampled (this one; a serving job's server).
    `energy`: a counter this sampler alone reads (cumulative joules per row), for energy over
    windows the caller does not bracket itself (a serving job's load levels)."""

    def __init__(
        self,
        device_type: str,
        device_index: int | None = None,
        *,
        pid: int | None = None,
        energy: EnergyCounter | None = None,
        interval_s: float = SAMPLE_INTERVAL_S,
    ):
        self.interval_s = interval_s
        self.energy = energy
        self.rows: list[dict[str, Any]] = []
        # Set by the caller as the phases change ("warm-up", "timed", a load level's label);
        # every row carries it, and the summary leaves the warm-up out.
        self.phase = "timed"
        self.gpu_note: str | None = None
        self.probes: list[Any] = [ProcessProbe(pid or os.getpid())]
        if device_type == "cuda":
            try:
                self.probes.append(GpuProbe(device_index or 0))
            except NvmlUnavailable as error:
                self.gpu_note = str(error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quantbench-telemetry", daemon=True)
        self.started_at = 0.0

    def watch(self, pid: int) -> None:
        """Sample process `pid` from now on (a serving job's server, once it has started)."""
        self.probes[0] = ProcessProbe(pid)

    def _sample(self) -> None:
        now = time.perf_counter()
        row: dict[str, Any] = {"t_s": now - self.started_at, "phase": self.phase}
        for probe in self.probes:
            row |= probe.sample()
        if self.energy is not None:
            row["energy_j"] = self.energy.read_j()
        row["perf_counter_s"] = now
        self.rows.append(row)

    def _run(self) -> None:
        ticks = 0
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception as error:
                log.warning("telemetry sampling stopped: %s", error)
                return
            ticks += 1
            self._stop.wait(max(0.0, self.started_at + ticks * self.interval_s - time.perf_counter()))

    def __enter__(self) -> TelemetrySampler:
        self.started_at = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the state at the end of the phase

    def frame(self) -> Any:
        import polars as pl

        return pl.DataFrame(self.rows, infer_schema_length=None)

    def write(self, job_dir: Path) -> None:
        from quantbench.atomic import write_parquet_atomic
        from quantbench.jobdir import TELEMETRY_FILE

        if self.rows:
            write_parquet_atomic(Path(job_dir) / TELEMETRY_FILE, self.frame())

    def summary(self) -> dict[str, Any]:
        """What result.json records: how many samples, the clocks reached and whether a power or
        thermal limit held them down (NVML's clock-event reasons; None without a GPU reading)."""

        def values(column: str) -> list[Any]:
            return [
                row[column]
                for row in self.rows
                if row.get(column) is not None and row["phase"] not in UNMEASURED_PHASES
            ]

        masks = values("clock_event_reasons")
        reasons = sorted({name for mask in masks for name in throttle_names(mask)})
        sm_clocks, power = values("sm_clock_mhz"), values("power_w")
        return {
            "telemetry_samples": len(self.rows),
            "telemetry_interval_s": self.interval_s,
            "telemetry_gpu_note": self.gpu_note,
            "clocks_throttled": bool(reasons) if masks else None,
            "throttle_reasons": ", ".join(reasons) or None,
            "throttled_sample_fraction": sum(1 for mask in masks if mask & THROTTLE_MASK) / len(masks)
            if masks
            else None,
            "sm_clock_min_mhz": min(sm_clocks) if sm_clocks else None,
            "sm_clock_max_mhz": max(sm_clocks) if sm_clocks else None,
            "power_max_w": max(power) if power else None,
        }

    def energy_between(self, start_s: float, end_s: float) -> float | None:
        """Joules between two perf_counter times, interpolated linearly between samples; None
        without an energy counter or when the samples do not cover the window."""
        points = [(row["perf_counter_s"], row["energy_j"]) for row in self.rows if row.get("energy_j") is not None]
        if len(points) < 2 or start_s < points[0][0] - self.interval_s or end_s > points[-1][0] + self.interval_s:
            return None

        def at(when: float) -> float:
            for (t0, e0), (t1, e1) in zip(points, points[1:]):
                if when <= t1:
                    return e0 + (e1 - e0) * max(0.0, when - t0) / (t1 - t0) if t1 > t0 else e1
            return points[-1][1]

        return at(end_s) - at(start_s)
