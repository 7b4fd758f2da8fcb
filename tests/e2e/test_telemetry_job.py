"""Telemetry and energy in a real job on this CPU."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from support.app import run_app

from quantbench.jobdir import TELEMETRY_FILE
from quantbench.measure.energy import ENERGY_COLUMNS, open_energy_counter


@pytest.fixture(scope="module")
def tiny_job(tmp_path_factory, cache_dir) -> Path:
    """One tiny-llama job on this CPU, shared by the tests of this module."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_dir, code = run_app(
            ["model=tiny-llama", "bench=quick", "precision=fp32", "batch=2"],
            tmp_path_factory.mktemp("telemetry"),
            monkeypatch,
        )
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
