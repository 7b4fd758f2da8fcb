"""The built-in quantizer-config precisions (bitsandbytes fp4, torchao, quanto, fp8): the GPU requirement
in `quantbench list`, the reason a missing library gives, lazy imports, and bits_per_weight and the
kernel column on hand-built models (one real sweep: tests/e2e/test_quantizers_builtin_sweep.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torchao")
pytest.importorskip("optimum.quanto")


def test_list_shows_the_gpu_requirement_in_the_backend_family_matrix(capsys):
    from quantbench.cli.listing import main

    assert main(["--device", "cpu"]) == 0
    matrix = capsys.readouterr().out.split("backend x family")[1]
    fp8_row = next(line for line in matrix.splitlines() if line.startswith("│ fp8 "))
    assert "fp8 needs compute capability >= 8.9; this device: cpu" in fp8_row


def test_a_missing_library_is_the_reason_naming_the_install(monkeypatch):
    # None in sys.modules: the import fails exactly as when the package is not installed. The
    # reason becomes the skipped row through the path every backend shares (tests/e2e/test_errors.py).
    from quantbench.config import registry
    from quantbench.runtime.device import resolve_device

    monkeypatch.setitem(sys.modules, "optimum.quanto", None)
    monkeypatch.setitem(sys.modules, "torchao", None)
    cpu = resolve_device("cpu")
    quanto, torchao = registry.backends().get("quanto"), registry.backends().get("torchao")
    assert (
        quanto.unavailable_reason(cpu)
        == "needs optimum-quanto (pip install optimum-quanto); module optimum.quanto not importable"
    )
    assert torchao.unavailable_reason(cpu) == "needs torchao (pip install torchao); module torchao not importable"


def test_selecting_fp32_imports_none_of_the_quantization_libraries(tmp_path):
    # A fresh interpreter: this process imported them all long ago. The fp32 backend, its config
    # schema and the registry listing every backend must not pull in any quantizer library.
    code = (
        "import sys\n"
        "from quantbench.config import registry\n"
        "from quantbench.config.schema import register_configs\n"
        "register_configs()\n"
        "registry.backends().names()\n"
        "registry.backends().get('fp32')\n"
        "import quantbench.job.run\n"
        "print(sorted(m for m in ('torchao', 'optimum.quanto', 'bitsandbytes', 'gptqmodel', 'hqq', 'auto_round')"
        " if m in sys.modules))\n"
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
    assert [name for name, _ in block_linear_layers(model)] == [
        "layers.0.up",
        "layers.0.down",
        "layers.1.up",
        "layers.1.down",
    ]
    assert bits_per_weight(model) == 16
    assert linear_kernel(model) == "torch.nn.Linear bfloat16"


def test_bitsandbytes_nf4_and_int8_count_their_scales():
    import torch

    bnb = pytest.importorskip("bitsandbytes")
    from quantbench.measure.linear_kernel import linear_kernel
    from quantbench.measure.weight_bits import bits_per_weight

    def nf4(width_in, width_out):
        layer = bnb.nn.Linear4bit(
            width_in, width_out, quant_type="nf4", compress_statistics=True, compute_dtype=torch.float32
        )
        weight = bnb.nn.Params4bit(
            torch.randn(width_out, width_in), requires_grad=False, quant_type="nf4", compress_statistics=True
        )
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
