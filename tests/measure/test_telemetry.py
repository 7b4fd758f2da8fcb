"""The GPU telemetry probe and the shared-GPU check (bench.exclusive_gpu) through a fake NVML
(telemetry and energy in a real job on this CPU: tests/e2e/test_telemetry_job.py)."""

from __future__ import annotations

import json
import os
import time

import polars as pl
import pytest
from omegaconf import open_dict
from support.fake_nvml import FakeGpu, install, process

from quantbench.errors import JobSkipped
from quantbench.jobdir import TELEMETRY_FILE
from quantbench.measure.energy import open_energy_counter
from quantbench.measure.gpu_processes import check_exclusive_gpu, other_gpu_processes
from quantbench.measure.telemetry import TelemetrySampler


def test_gpu_probe_records_power_clocks_and_flags_a_power_cap(monkeypatch):
    gpu = install(monkeypatch, FakeGpu(clock_event_reasons=0x1))  # idle: not a limit
    with TelemetrySampler("cuda", 0, interval_s=0.01) as sampler:
        time.sleep(0.05)
        gpu.clock_event_reasons = 0x4 | 0x1  # the software power cap holds the clocks down
        gpu.sm_clock_mhz = 1500
        time.sleep(0.05)
    frame = sampler.frame()
    assert {
        "power_w",
        "sm_clock_mhz",
        "memory_clock_mhz",
        "gpu_util_pct",
        "temperature_c",
        "gpu_memory_used_gb",
        "clock_event_reasons",
    } <= set(frame.columns)
    assert frame.get_column("power_w").max() == pytest.approx(350.0)
    summary = sampler.summary()
    assert summary["clocks_throttled"] is True and summary["throttle_reasons"] == "sw_power_cap"
    assert summary["sm_clock_min_mhz"] == 1500 and summary["sm_clock_max_mhz"] == 1980
    assert 0 < summary["throttled_sample_fraction"] < 1


def test_idle_and_application_clock_reasons_are_not_throttling(monkeypatch):
    install(monkeypatch, FakeGpu(clock_event_reasons=0x1 | 0x2))
    sampler = TelemetrySampler("cuda", 0, interval_s=0.01)
    with sampler:
        time.sleep(0.02)
    assert sampler.summary()["clocks_throttled"] is False


def test_energy_over_a_window_is_interpolated_from_the_samples(monkeypatch, tmp_path):
    gpu = install(monkeypatch, FakeGpu(energy_step_mj=1000))  # 1 J more at every read
    counter, _ = open_energy_counter("cuda", 0)
    with TelemetrySampler("cuda", 0, energy=counter, interval_s=0.01) as sampler:
        time.sleep(0.1)
    rows = sampler.rows
    first, last = rows[0]["perf_counter_s"], rows[-1]["perf_counter_s"]
    assert sampler.energy_between(first, last) == pytest.approx(rows[-1]["energy_j"] - rows[0]["energy_j"])
    middle = (first + last) / 2
    assert 0 < sampler.energy_between(first, middle) < sampler.energy_between(first, last)
    assert sampler.energy_between(first - 10, last) is None  # the samples do not cover it
    sampler.write(tmp_path)
    assert pl.read_parquet(tmp_path / TELEMETRY_FILE).height == len(rows)
    assert gpu.energy_mj > 0


def test_other_processes_on_the_gpu_are_listed_without_this_one(monkeypatch):
    install(
        monkeypatch,
        FakeGpu(
            # this process and the sweep that started it are not "other"
            processes=[
                process(os.getpid(), 2_000_000_000),
                process(os.getppid(), 500_000_000),
                process(4242, 30_000_000_000),
            ],
            graphics=[process(4242, None), process(777, None)],
            names={4242: "vllm", 777: "Xorg"},
        ),
    )
    listed = other_gpu_processes(0)
    assert [entry["pid"] for entry in listed] == [777, 4242]
    assert listed[1] == {"pid": 4242, "name": "vllm", "kinds": ["compute", "graphics"], "used_memory_gb": 30.0}
    assert listed[0]["used_memory_gb"] is None
    recorded = check_exclusive_gpu("warn", "cuda", 0)
    assert recorded["other_gpu_processes"] == listed
    with pytest.raises(
        JobSkipped,
        match=r"GPU 0 is shared with 2 other process\(es\): pid 777 \(Xorg\), "
        r"pid 4242 \(vllm, 30.00 GB\); bench.exclusive_gpu=error",
    ):
        check_exclusive_gpu("error", "cuda", 0)


def test_an_exclusive_gpu_passes_and_a_cpu_is_not_checked(monkeypatch):
    install(monkeypatch, FakeGpu(processes=[process(os.getpid(), 1)]))
    assert check_exclusive_gpu("error", "cuda", 0) == {
        "other_gpu_processes": [],
        "other_gpu_process_count": 0,
        "other_gpu_processes_note": None,
    }
    assert check_exclusive_gpu("error", "cpu", None) == {}
    with pytest.raises(JobSkipped, match="bench.exclusive_gpu must be one of warn, error, got 'sometimes'"):
        check_exclusive_gpu("sometimes", "cpu", None)


def test_a_job_on_a_shared_gpu_with_exclusive_gpu_error_is_a_skipped_row(monkeypatch, tmp_path, compose_config):
    """The real job function on a (faked) GPU: skipped before any model work, the processes in the reason."""
    import quantbench.job.run as job
    from quantbench.runtime.device import Device

    install(monkeypatch, FakeGpu(processes=[process(31337, 8_000_000_000)], names={31337: "trainer"}))
    monkeypatch.setattr(job, "resolve_device", lambda spec: Device("cuda", 0, "NVIDIA H200", (9, 0), 141.0))
    cfg = compose_config(["model=tiny-llama", "bench=quick", "bench.exclusive_gpu=error"])
    with open_dict(cfg):
        del cfg["hydra"]  # composed outside a run: Hydra's own node has nothing to resolve
    result = job.run_job(cfg, tmp_path / "job")
    assert result.status == "skipped"
    assert result.reason.startswith("GPU 0 is shared with 1 other process(es): pid 31337 (trainer, 8.00 GB)")
    written = json.loads((tmp_path / "job" / "result.json").read_text())
    assert written["status"] == "skipped" and "pid 31337" in written["reason"]
