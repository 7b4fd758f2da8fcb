"""GPU tests (`pytest -m gpu`): every precision with CUDA kernels runs a tiny-llama job on the
GPU; timed regions are synchronised; NVML memory, energy and telemetry are read; quantized
backends record their kernels.

Each test skips on its own (the `cuda` fixture), never the module, so `pytest -m gpu --co -q`
lists them on a CPU. A precision whose config does not exist yet, or that cannot run on this GPU
(bitsandbytes missing, fp8 below compute capability 8.9, gptqmodel without its kernels), skips
with the job's own reason. benchmarks/gpu_check.sh runs these first on a lent GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import ROOT
from support.app import run_app

from quantbench.measure.timing import DeviceClock

pytestmark = pytest.mark.gpu

PRECISION_DIR = ROOT / "quantbench" / "conf" / "precision"
# Named by the issue that asked for GPU coverage; listed even before their configs exist, so a
# missing one shows up as a skip that names it rather than as silence.
EXPECTED_PRECISIONS = ("fp32", "fp16", "bf16", "int8", "nf4", "fp4", "gptq", "awq", "fp8")


def _precisions() -> list[str]:
    """Every shipped precision that runs through torch (GGUF types run through llama.cpp, on its own build)."""
    shipped = {path.stem for path in PRECISION_DIR.glob("*.yaml") if not path.stem.startswith("gguf-")}
    return sorted(shipped | set(EXPECTED_PRECISIONS))


@pytest.fixture
def cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch")
    return torch.device("cuda", 0)


def _run_job(tmp_path: Path, overrides: list[str]) -> tuple[Path, dict]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_dir, code = run_app(["model=tiny-llama", "bench=quick", "hardware=auto", *overrides], tmp_path, monkeypatch)
    assert code == 0, f"quantbench {' '.join(overrides)} exited with {code}"
    return run_dir, json.loads((run_dir / "result.json").read_text())


@pytest.mark.parametrize("precision", _precisions())
def test_precision_runs_on_cuda(cuda, precision, tmp_path):
    if not (PRECISION_DIR / f"{precision}.yaml").is_file():
        pytest.skip(f"no precision config '{precision}' yet (quantbench/conf/precision/{precision}.yaml)")
    run_dir, result = _run_job(tmp_path, [f"precision={precision}", "batch=2"])
    if result["status"] == "skipped":
        pytest.skip(f"{precision} cannot run on this GPU: {result['reason']}")
    assert result["status"] == "ok", result["reason"]
    import torch

    assert result["identity"]["device"] == torch.cuda.get_device_name(0)
    metrics = result["metrics"]
    assert metrics["tokens_per_s"] > 0
    assert 0 < metrics["ttft_p50_ms"] < metrics["latency_p50_ms"]  # the first token comes before the last
    assert metrics["peak_allocated_gb"] > 0 and metrics["peak_reserved_gb"] >= metrics["peak_allocated_gb"]
    if "kernel" in metrics:  # GPTQ/AWQ/HQQ name the kernel they chose: on a GPU, a CUDA one
        assert metrics["kernel"], f"{precision} recorded an empty kernel name"


def test_device_clock_waits_for_queued_work(cuda, monkeypatch):
    """DeviceClock.now() returns only after every queued kernel has finished; with the
    synchronisation taken away the same read returns while the work is still running."""
    import torch

    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # plain fp32: about a second of queued work
    a = torch.randn(8192, 8192, device=cuda)
    clock = DeviceClock("cuda")
    clock.now()

    def queue_work() -> torch.cuda.Event:
        for _ in range(40):
            torch.mm(a, a)
        done = torch.cuda.Event()
        done.record()
        return done

    done = queue_work()
    clock.now()
    assert done.query(), "DeviceClock.now() returned before the queued matmuls finished"

    monkeypatch.setattr(DeviceClock, "synchronize", lambda self: None)
    done = queue_work()
    clock.now()
    still_running = not done.query()
    torch.cuda.synchronize()
    assert still_running, "without synchronize the queue should still be running: this test can no longer tell"


def test_every_timed_iteration_is_closed_by_a_synchronize(cuda, tmp_path, monkeypatch):
    """A real job: torch.cuda.synchronize runs at the start and end of every timed generate call."""
    import torch

    calls = []
    real = torch.cuda.synchronize
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: (calls.append(1), real(*args, **kwargs))[1])
    _, result = _run_job(tmp_path, ["precision=fp16", "batch=1"])
    assert result["status"] == "ok", result["reason"]
    iterations = result["metrics"]["n_iterations"] + result["metrics"]["warmup_iterations_done"]
    assert len(calls) >= 3 * iterations  # start, first token, end of each iteration


def test_nvml_memory_energy_and_telemetry_are_read(cuda, tmp_path):
    import polars as pl

    run_dir, result = _run_job(
        tmp_path, ["precision=fp16", "batch=4", "bench.min_seconds=1.0", "bench.max_iterations=1000"]
    )
    assert result["status"] == "ok", result["reason"]
    metrics = result["metrics"]
    assert metrics["nvml_process_memory_gb"] > 0
    assert metrics["energy_source"] == "nvml", metrics["energy_unavailable_reason"]
    assert metrics["energy_j"] > 0 and metrics["avg_power_w"] > 0 and metrics["energy_per_token_j"] > 0
    assert metrics["other_gpu_process_count"] is not None  # the shared-GPU check ran
    iterations = pl.read_parquet(run_dir / "iterations.parquet")
    assert iterations.get_column("energy_j").null_count() == 0
    telemetry = pl.read_parquet(run_dir / "telemetry.parquet")
    assert telemetry.height >= 2
    for column in ("power_w", "sm_clock_mhz", "memory_clock_mhz", "gpu_memory_used_gb", "clock_event_reasons"):
        assert telemetry.get_column(column).null_count() < telemetry.height, f"NVML gave no {column}"
    assert metrics["clocks_throttled"] in (True, False)


@pytest.mark.parametrize("precision", ["gptq", "awq", "hqq-4bit"])
def test_quantized_backends_record_a_cuda_kernel(cuda, precision, tmp_path):
    if not (PRECISION_DIR / f"{precision}.yaml").is_file():
        pytest.skip(f"no precision config '{precision}'")
    _, result = _run_job(tmp_path, [f"precision={precision}", "batch=1"])
    if result["status"] == "skipped":
        pytest.skip(result["reason"])
    assert result["status"] == "ok", result["reason"]
    kernel = result["metrics"].get("kernel")
    assert kernel, f"{precision} on CUDA recorded no kernel name"
