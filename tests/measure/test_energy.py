"""Energy counters: RAPL from a fake powercap tree (wrap-around included), NVML through a fake
pynvml, the reason recorded where there is no counter, and the columns derived from joules."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_nvml import FakeGpu, install

from quantbench.measure.energy import ENERGY_COLUMNS, EnergyMeter, energy_metrics, open_energy_counter, open_rapl


def _domain(path: Path, name: str, energy_uj: int, max_uj: int) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two sockets: package-0 with core and dram subdomains, package-1 without dram."""
    root = tmp_path / "powercap"
    _domain(root / "intel-rapl:0", "package-0", 900_000, 1_000_000)
    _domain(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000, 1_000_000)
    _domain(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 10_000, 2_000_000)
    _domain(root / "intel-rapl:1", "package-1", 0, 1_000_000)
    # The kernel also lists the subdomains at the top level (symlinks); they are not packages.
    (root / "intel-rapl:0:0").symlink_to(root / "intel-rapl:0" / "intel-rapl:0:0")
    return root


def _set(domain: Path, energy_uj: int) -> None:
    (domain / "energy_uj").write_text(f"{energy_uj}\n")


def test_rapl_sums_packages_and_dram_not_the_cores(powercap):
    counter = open_rapl(powercap)
    assert [domain.name for domain in counter.domains] == ["package-0", "dram-0", "package-1"]
    _set(powercap / "intel-rapl:0", 950_000)  # +0.05 J
    _set(powercap / "intel-rapl:0" / "intel-rapl:0:0", 900_000)  # inside the package figure: not added
    _set(powercap / "intel-rapl:0" / "intel-rapl:0:1", 30_000)  # +0.02 J
    _set(powercap / "intel-rapl:1", 100_000)  # +0.1 J
    assert counter.read_j() == pytest.approx(0.17)
    assert counter.source == "rapl" and "package-0 + dram-0 + package-1" in counter.scope


def test_rapl_counter_wrap_around_adds_the_range(powercap):
    counter = open_rapl(powercap)
    package = powercap / "intel-rapl:0"
    _set(package, 100_000)  # from 900_000 past max_energy_range_uj=1_000_000: +200_000 uJ
    assert counter.read_j() == pytest.approx(0.2)
    _set(package, 400_000)
    assert counter.read_j() == pytest.approx(0.5)
    _set(package, 300_000)  # wrapped again: +900_000
    assert counter.read_j() == pytest.approx(1.4)


def test_rapl_unreadable_or_missing_says_why(tmp_path, powercap):
    with pytest.raises(ValueError, match="does not exist"):
        open_rapl(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no intel-rapl:N package domain"):
        open_rapl(empty)
    for package in ("intel-rapl:0", "intel-rapl:1"):  # energy_uj that cannot be read (root-only since 5.10)
        (powercap / package / "energy_uj").unlink()
        (powercap / package / "energy_uj").mkdir()
    with pytest.raises(ValueError, match="no readable RAPL domain"):
        open_rapl(powercap)


def test_a_cpu_job_reads_rapl_where_it_is_readable(powercap):
    meter = EnergyMeter("cpu", None, powercap_root=powercap)
    meter.before()
    _set(powercap / "intel-rapl:1", 500_000)  # +0.5 J
    assert meter.after() == pytest.approx(0.5)
    metrics = meter.metrics([0.5, 0.25], seconds=1.5, tokens=30)
    assert metrics["energy_source"] == "rapl" and metrics["energy_unavailable_reason"] is None
    assert metrics["energy_j"] == pytest.approx(0.75)
    assert metrics["energy_per_token_j"] == pytest.approx(0.025)
    assert metrics["avg_power_w"] == pytest.approx(0.5)
    assert metrics["tokens_per_kwh"] == pytest.approx(30 / (0.75 / 3.6e6))


def test_this_machine_without_counters_leaves_the_columns_empty_with_the_reason(tmp_path):
    counter, reason = open_energy_counter("cpu", None, powercap_root=tmp_path / "no-powercap")
    assert counter is None
    assert (
        reason == f"no NVML device (the job runs on the cpu) and {tmp_path / 'no-powercap'} does not exist "
        "(no RAPL driver in this kernel or VM)"
    )
    metrics = energy_metrics(None, 2.0, 64, counter, reason)
    assert all(metrics[column] is None for column in ENERGY_COLUMNS if column != "energy_unavailable_reason")
    assert metrics["energy_unavailable_reason"] == reason


def test_a_gpu_without_nvml_says_so(monkeypatch):
    import pynvml

    def no_library() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    meter = EnergyMeter("cuda", 0)
    assert meter.counter is None
    assert meter.reason.startswith("no NVML energy counter: NVML cannot start:")
    meter.before()
    assert meter.after() is None
    assert meter.metrics([None, None], 1.0, 10)["energy_j"] is None


def test_nvml_energy_is_the_counter_difference_in_joules(monkeypatch):
    gpu = install(monkeypatch, FakeGpu(energy_mj=5_000_000, energy_step_mj=0))
    meter = EnergyMeter("cuda", 0)
    assert meter.counter is not None and meter.counter.source == "nvml"
    meter.before()
    gpu.energy_mj += 42_500  # 42.5 J during the region
    assert meter.after() == pytest.approx(42.5)
    metrics = meter.metrics([42.5], seconds=0.125, tokens=256)
    assert metrics["energy_source"] == "nvml"
    assert metrics["avg_power_w"] == pytest.approx(340.0)
    assert metrics["energy_per_token_j"] == pytest.approx(42.5 / 256)


def test_nvml_without_an_energy_counter_is_a_reason_not_an_estimate(monkeypatch):
    import pynvml

    install(monkeypatch, FakeGpu())

    def not_supported(handle: object) -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", not_supported)
    counter, reason = open_energy_counter("cuda", 0)
    assert counter is None and "cannot read the energy counter of GPU 0" in reason


def test_nvml_process_memory_is_this_process_through_the_one_nvml_opener(monkeypatch):
    import os

    import pynvml
    from support.fake_nvml import process

    from quantbench.measure.memory import nvml_process_memory_bytes

    gpu = install(monkeypatch, FakeGpu(processes=[process(os.getpid() + 1, 9_000), process(os.getpid(), 3_000_000)]))
    assert nvml_process_memory_bytes(0) == 3_000_000
    gpu.processes = [process(os.getpid() + 1, 9_000)]
    assert nvml_process_memory_bytes(0) == 0  # no context on this GPU yet
    assert nvml_process_memory_bytes(1) is None  # no such GPU

    def no_library() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", no_library)
    assert nvml_process_memory_bytes(0) is None


def _add_energy(job_dir: Path, watts: float, throttled: bool) -> None:
    """Give a synthetic job what a GPU job with NVML records: per-iteration joules, the energy
    columns and telemetry with clocks (held down by the power cap where `throttled`)."""
    import json

    import polars as pl

    from quantbench.atomic import write_json_atomic, write_parquet_atomic
    from quantbench.jobdir import ITERATIONS_FILE, RESULT_FILE, TELEMETRY_FILE
    from quantbench.measure.energy import energy_metrics

    iterations = pl.read_parquet(job_dir / ITERATIONS_FILE)
    iterations = iterations.with_columns((pl.col("latency_ms") / 1e3 * watts).alias("energy_j"))
    write_parquet_atomic(job_dir / ITERATIONS_FILE, iterations)
    counter = type("Nvml", (), {"source": "nvml", "scope": "GPU 0 board"})()
    seconds = iterations.get_column("latency_ms").sum() / 1e3
    metrics = energy_metrics(
        iterations.get_column("energy_j").sum(),
        seconds,
        int(iterations.get_column("n_generated_tokens").sum()),
        counter,
        None,
    )
    result = json.loads((job_dir / RESULT_FILE).read_text())
    result["metrics"] |= metrics | {
        "telemetry_samples": 3,
        "clocks_throttled": throttled,
        "throttle_reasons": "sw_power_cap" if throttled else None,
        "throttled_sample_fraction": 1.0 if throttled else 0.0,
        "sm_clock_min_mhz": 1400,
        "sm_clock_max_mhz": 1980,
    }
    write_json_atomic(job_dir / RESULT_FILE, result)
    write_parquet_atomic(
        job_dir / TELEMETRY_FILE,
        pl.DataFrame(
            {
                "t_s": [0.0, 0.1, 0.2],
                "phase": ["timed"] * 3,
                "power_w": [watts] * 3,
                "sm_clock_mhz": [1980, 1400 if throttled else 1980, 1980],
            }
        ),
    )


def test_energy_statistics_and_report_use_the_energy_columns(tmp_path):
    """bf16 at 1.5x the speed and 80 W against fp32 at 100 W: 1.875x the tokens per kWh."""
    from support.synthetic_sweep import DEFAULT_PRECISIONS, SyntheticSweep, write_sweep

    from quantbench.analysis.analyze import analyze
    from quantbench.analysis.plots import FIGURES, labels
    from quantbench.analysis.telemetry_plots import draw_telemetry
    from quantbench.collect.sweeps import write_summary
    from quantbench.config.schema import AnalysisConfig
    from quantbench.report.build import build_document
    from quantbench.report.markdown import render_markdown

    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(precisions=DEFAULT_PRECISIONS[:2], batches=(1,), noise=0.0))
    _add_energy(sweep / "0", watts=100.0, throttled=False)
    _add_energy(sweep / "1", watts=80.0, throttled=True)
    write_summary(sweep)
    settings = AnalysisConfig(bootstrap_resamples=200)
    analysis = analyze(sweep, settings)
    comparisons = analysis.throughput
    energy = comparisons.filter(comparisons["metric"] == "tokens_per_kwh").row(0, named=True)
    assert energy["precision"] == "bf16" and energy["ratio"] == pytest.approx(1.875)
    assert energy["direction"] == "more efficient"
    report = render_markdown(build_document(analysis, [], sweep))  # the figures are drawn below, one alone
    energy_section = report.split("## Energy")[1].split("\n## ")[0]
    assert "J per token" in energy_section and "nvml" in energy_section and "Tokens per kWh vs fp32" in energy_section
    assert "**clocks throttled**: synthetic bf16 batch 1 (sw_power_cap" in report
    assert {"energy_per_token", "telemetry"} <= {name for name, _, _ in FIGURES}
    note = draw_telemetry(analysis.sweep, analysis.table, labels(analysis, analysis.table), tmp_path / "telemetry.png")
    assert (tmp_path / "telemetry.png").stat().st_size > 0 and note.startswith("GPU board power and SM clock")
