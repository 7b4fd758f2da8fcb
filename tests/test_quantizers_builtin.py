"""The built-in quantizer-config precisions (bitsandbytes fp4, torchao, quanto, fp8) on tiny-llama:
one real sweep with KL divergence against fp32, bits_per_weight and the kernel column of every row,
the skipped rows of GPU-only formats on this CPU and of a missing library, and lazy imports."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

from conftest import SHARED_DATA, run_app

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


def test_list_shows_the_gpu_requirement_in_the_backend_family_matrix(capsys):
    from quantbench.list import main

    assert main(["--device", "cpu"]) == 0
    matrix = capsys.readouterr().out.split("backend x family")[1]
    fp8_row = next(line for line in matrix.splitlines() if line.startswith("│ fp8 "))
    assert "fp8 needs compute capability >= 8.9; this device: cpu" in fp8_row


def test_a_missing_library_is_the_reason_naming_the_install(monkeypatch):
    # None in sys.modules: the import fails exactly as when the package is not installed. The
    # reason becomes the skipped row through the path every backend shares (test_errors.py).
    from quantbench import registry
    from quantbench.device import resolve_device

    monkeypatch.setitem(sys.modules, "optimum.quanto", None)
    monkeypatch.setitem(sys.modules, "torchao", None)
    cpu = resolve_device("cpu")
    quanto, torchao = registry.backends().get("quanto"), registry.backends().get("torchao")
    assert quanto.unavailable_reason(cpu) == "needs optimum-quanto (pip install optimum-quanto); module optimum.quanto not importable"
    assert torchao.unavailable_reason(cpu) == "needs torchao (pip install torchao); module torchao not importable"


def test_selecting_fp32_imports_none_of_the_quantization_libraries(tmp_path):
    # A fresh interpreter: this process imported them all long ago. The fp32 backend, its config
    # schema and the registry listing every backend must not pull in any quantizer library.
    code = (
        "import sys\n"
        "from quantbench import registry\n"
        "from quantbench.schema import register_configs\n"
        "register_configs()\n"
        "registry.backends().names()\n"
        "registry.backends().get('fp32')\n"
        "import quantbench.job\n"
        "print(sorted(m for m in ('torchao', 'optimum.quanto', 'bitsandbytes', 'gptqmodel', 'hqq', 'auto_round') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


# --- bits_per_weight on hand-built models: the definition itself, without loading a checkpoint ---


def blocks_model(make_linear):
    """An embedding, two blocks of two linear layers (128->256->128) and an output head."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.down = make_linear(128, 256), make_linear(256, 128)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(1000, 128)
            self.layers = nn.ModuleList([Block(), Block()])
            self.lm_head = nn.Linear(128, 1000)  # outside the blocks: not counted

    return Model()


def test_dense_bits_per_weight_is_the_dtype_width_and_leaves_out_embeddings_head_and_bias():
    import torch

    from quantbench.measure.linear_kernel import linear_kernel
    from quantbench.measure.weight_bits import bits_per_weight, block_linear_layers

    model = blocks_model(lambda width_in, width_out: torch.nn.Linear(width_in, width_out, dtype=torch.bfloat16))
    assert [name for name, _ in block_linear_layers(model)] == ["layers.0.up", "layers.0.down", "layers.1.up", "layers.1.down"]
    assert bits_per_weight(model) == 16
    assert linear_kernel(model) == "torch.nn.Linear bfloat16"


def test_bitsandbytes_nf4_and_int8_count_their_scales():
    import torch

    bnb = pytest.importorskip("bitsandbytes")
    from quantbench.measure.linear_kernel import linear_kernel
    from quantbench.measure.weight_bits import bits_per_weight

    def nf4(width_in, width_out):
        layer = bnb.nn.Linear4bit(width_in, width_out, quant_type="nf4", compress_statistics=True, compute_dtype=torch.float32)
        weight = bnb.nn.Params4bit(torch.randn(width_out, width_in), requires_grad=False, quant_type="nf4", compress_statistics=True)
        layer.weight = weight._quantize("cpu")
        return layer

    def int8(width_in, width_out):
        layer = bnb.nn.Linear8bitLt(width_in, width_out, has_fp16_weights=False)
        layer.load_state_dict({"weight": torch.randn(width_out, width_in), "bias": torch.zeros(width_out)})
        return layer.to("cpu")  # quantizes: int8 rows and one float32 scale (SCB) per row

    four_bit = blocks_model(nf4)
    assert 4 < bits_per_weight(four_bit) < 5  # 4-bit codes, an 8-bit absmax per 64, codebooks
    assert linear_kernel(four_bit) == "bitsandbytes Linear4bit nf4"
    eight_bit = blocks_model(int8)
    # 8 bits plus 32 bits per row of 128 or 256 weights: 8 + 32 * (1/128 + 1/256) / 2 * ...
    assert bits_per_weight(eight_bit) == pytest.approx(8 + 32 * (256 + 128) / (2 * 128 * 256))
    assert linear_kernel(eight_bit) == "bitsandbytes Linear8bitLt int8"


def test_gguf_and_torch_models_use_the_same_layer_rule():
    from quantbench.gguf.files import is_linear_weight

    assert is_linear_weight("blk.3.attn_q.weight", 2) and is_linear_weight("blk.0.ffn_down.weight", 2)
    assert not is_linear_weight("token_embd.weight", 2) and not is_linear_weight("output.weight", 2)
    assert not is_linear_weight("blk.0.attn_norm.weight", 1)
