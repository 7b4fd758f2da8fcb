"""Telemetry and energy in a real job on this CPU, the GPU telemetry probe through a fake NVML,
and the shared-GPU check (bench.exclusive_gpu) with a fake NVML."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import polars as pl
import pytest
from omegaconf import open_dict
from conftest import run_app
from fake_nvml import FakeGpu, install, process

from quantbench.errors import JobSkipped
from quantbench.jobdir import TELEMETRY_FILE
from quantbench.measure.energy import ENERGY_COLUMNS, open_energy_counter
from quantbench.measure.gpu_processes import check_exclusive_gpu, other_gpu_processes
from quantbench.measure.telemetry import TelemetrySampler


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory, cache_dir) -> Path:
    """One tiny-llama job on this CPU, shared by the tests of this module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_dir, code = run_app(["model=tiny-llama", "bench=quick", "precision=fp32", "batch=2"], tmp_path_factory.mktemp("telemetry"), monkeypatch)
    assert code == 0
    return run_dir


def test_a_cpu_job_without_counters_has_empty_energy_columns_and_the_reason(tiny_job):
    result = json.loads((tiny_job / "result.json").read_text())
    assert result["status"] == "ok"
    metrics = result["metrics"]
    counter, reason = open_energy_counter("cpu")
    if counter is not None:
        pytest.skip(f"this machine has a readable energy counter ({counter.scope})")
    for column in ENERGY_COLUMNS:
        assert column in metrics
        if column != "energy_unavailable_reason":
            assert metrics[column] is None, column
    assert metrics["energy_unavailable_reason"] == reason
    assert "RAPL" in reason and "NVML" in reason
    iterations = pl.read_parquet(tiny_job / "iterations.parquet")
    assert iterations.get_column("energy_j").null_count() == iterations.height


def test_a_cpu_job_samples_its_cpu_time_and_memory(tiny_job):
    telemetry = pl.read_parquet(tiny_job / TELEMETRY_FILE)
    assert telemetry.height >= 2
    assert {"t_s", "phase", "cpu_time_s", "rss_gb"} <= set(telemetry.columns)
    assert set(telemetry.get_column("phase").unique()) <= {"warm-up", "timed"}
    assert "timed" in telemetry.get_column("phase").to_list()
    cpu = telemetry.get_column("cpu_time_s").to_list()
    assert cpu == sorted(cpu) and cpu[-1] > cpu[0]  # the job computed during the phase
    assert telemetry.get_column("rss_gb").min() > 0
    metrics = json.loads((tiny_job / "result.json").read_text())["metrics"]
    assert metrics["telemetry_samples"] == telemetry.height
    assert metrics["clocks_throttled"] is None  # no GPU clocks to judge


def test_gpu_probe_records_power_clocks_and_flags_a_power_cap(monkeypatch):
    gpu = install(monkeypatch, FakeGpu(clock_event_reasons=0x1))  # idle: not a limit
    with TelemetrySampler("cuda", 0, interval_s=0.01) as sampler:
        time.sleep(0.05)
        gpu.clock_event_reasons = 0x4 | 0x1  # the software power cap holds the clocks down
        gpu.sm_clock_mhz = 1500
        time.sleep(0.05)
    frame = sampler.frame()
    assert {"power_w", "sm_clock_mhz", "memory_clock_mhz", "gpu_util_pct", "temperature_c", "gpu_memory_used_gb", "clock_event_reasons"} <= set(frame.columns)
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
    install(monkeypatch, FakeGpu(
        # this process and the sweep that started it are not "other"
        processes=[process(os.getpid(), 2_000_000_000), process(os.getppid(), 500_000_000), process(4242, 30_000_000_000)],
        graphics=[process(4242, None), process(777, None)],
        names={4242: "vllm", 777: "Xorg"},
    ))
    listed = other_gpu_processes(0)
    assert [entry["pid"] for entry in listed] == [777, 4242]
    assert listed[1] == {"pid": 4242, "name": "vllm", "kinds": ["compute", "graphics"], "used_memory_gb": 30.0}
    assert listed[0]["used_memory_gb"] is None
    recorded = check_exclusive_gpu("warn", "cuda", 0)
    assert recorded["other_gpu_processes"] == listed
    with pytest.raises(JobSkipped, match=r"GPU 0 is shared with 2 other process\(es\): pid 777 \(Xorg\), pid 4242 \(vllm, 30.00 GB\); bench.exclusive_gpu=error"):
        check_exclusive_gpu("error", "cuda", 0)


def test_an_exclusive_gpu_passes_and_a_cpu_is_not_checked(monkeypatch):
    install(monkeypatch, FakeGpu(processes=[process(os.getpid(), 1)]))
    assert check_exclusive_gpu("error", "cuda", 0) == {"other_gpu_processes": [], "other_gpu_process_count": 0, "other_gpu_processes_note": None}
    assert check_exclusive_gpu("error", "cpu", None) == {}
    with pytest.raises(JobSkipped, match="bench.exclusive_gpu must be one of warn, error, got 'sometimes'"):
        check_exclusive_gpu("sometimes", "cpu", None)


def test_a_job_on_a_shared_gpu_with_exclusive_gpu_error_is_a_skipped_row(monkeypatch, tmp_path, compose_config):
    """The real job function on a (faked) GPU: skipped before any model work, the processes in the reason."""
    import quantbench.job as job
    from quantbench.device import Device

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
