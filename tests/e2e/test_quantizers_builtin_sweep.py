"""The built-in quantizer-config precisions (bitsandbytes fp4, torchao, quanto, fp8) on tiny-llama: one
real sweep with KL divergence against fp32, bits_per_weight and the kernel column of every row, and the
skipped rows of GPU-only formats on this CPU."""

from __future__ import annotations

import polars as pl
import pytest
from support import SHARED_DATA
from support.app import run_app

pytest.importorskip("torchao")
pytest.importorskip("optimum.quanto")

QUICK = ["model=tiny-llama", "bench=quick", "hardware=cpu", "analysis.report_at_end=false"]
QUALITY = ["quality=[kld]", "quality.context_tokens=64", "quality.stride=48", "quality.max_tokens=128"]
RUNS_ON_CPU = ["fp4", "torchao-int8wo", "quanto-int8"]
# The same checks for the remaining CPU formats, in a second sweep behind -m slow (test budget).
RUNS_ON_CPU_SLOW = ["torchao-int8dq", "quanto-int4"]
GPU_ONLY = ["fp8", "torchao-fp8", "torchao-int4wo"]
# bits_per_weight of each format on tiny-llama (in_features 128/256): the payload plus its scales
# (one per row for int8, per 64-block for bitsandbytes, per row or group for quanto int4).
PLAUSIBLE_BITS = {
    "fp32": (32, 32),
    "fp4": (4, 5),
    "torchao-int8wo": (8, 9),
    "torchao-int8dq": (8, 9),
    "quanto-int8": (8, 9),
    "quanto-int4": (4, 5),
}
# What each row names as the kernel or layout of its linear layers.
KERNEL_WORDS = {
    "fp32": "torch.nn.Linear float32",
    "fp4": "bitsandbytes Linear4bit fp4",
    "torchao-int8wo": "torchao Int8Tensor on",
    "torchao-int8dq": "torchao Int8Tensor, dynamic int8 activations",
    "quanto-int8": "QLinear qint8",
    "quanto-int4": "QLinear qint4",
}


def run_sweep(precisions: list[str], directory) -> dict[str, dict]:
    """One in-process sweep over fp32 and `precisions`; its summary rows by precision."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    monkeypatch = pytest.MonkeyPatch()
    try:
        target, code = run_app(
            ["-m", *QUICK, f"precision={','.join(['fp32', *precisions])}", *QUALITY, f"quality.data_dir={SHARED_DATA}"],
            directory,
            monkeypatch,
        )
    finally:
        monkeypatch.undo()
    assert code == 0
    summary = pl.read_parquet(target / "summary.parquet")
    return {row["precision"]: row for row in summary.iter_rows(named=True)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, dict]:
    return run_sweep([*RUNS_ON_CPU, *GPU_ONLY], tmp_path_factory.mktemp("builtin-quantizers"))


@pytest.fixture(scope="module")
def slow_sweep(tmp_path_factory) -> dict[str, dict]:
    return run_sweep(RUNS_ON_CPU_SLOW, tmp_path_factory.mktemp("builtin-quantizers-slow"))


def check_runs_on_cpu(rows: dict[str, dict], precision: str) -> None:
    """ok, faster than nothing, smaller than fp32, different from fp32, and its bits and kernel."""
    row, fp32 = rows[precision], rows["fp32"]
    assert row["status"] == "ok", row["reason"]
    assert row["tokens_per_s"] > 0
    assert row["weight_memory_gb"] < 0.7 * fp32["weight_memory_gb"]
    assert row["kld_reference"] == "fp32" and row["kld_mean"] > 0
    low, high = PLAUSIBLE_BITS[precision]
    assert low <= row["bits_per_weight"] <= high
    assert KERNEL_WORDS[precision] in row["kernel"]


@pytest.mark.parametrize("precision", RUNS_ON_CPU)
def test_the_precision_runs_on_cpu_smaller_and_different_from_fp32(sweep, precision):
    check_runs_on_cpu(sweep, precision)


@pytest.mark.slow
@pytest.mark.parametrize("precision", RUNS_ON_CPU_SLOW)
def test_the_other_cpu_precisions_run_too(slow_sweep, precision):
    check_runs_on_cpu(slow_sweep, precision)


def test_fp32_is_32_bits_per_weight_and_the_reference_of_the_kld(sweep):
    assert sweep["fp32"]["bits_per_weight"] == 32
    assert KERNEL_WORDS["fp32"] in sweep["fp32"]["kernel"]
    assert sweep["fp32"]["kld_mean"] == 0


@pytest.mark.parametrize(
    ("precision", "reason"),
    [
        ("fp8", "fp8 needs compute capability >= 8.9; this device: cpu"),
        ("torchao-fp8", "torchao float8 needs compute capability >= 8.9; this device: cpu"),
        ("torchao-int4wo", "torchao int4 weight-only needs compute capability >= 8.0; this device: cpu"),
    ],
)
def test_gpu_only_formats_are_skipped_on_cpu_with_the_reason(sweep, precision, reason):
    assert (sweep[precision]["status"], sweep[precision]["reason"]) == ("skipped", reason)
