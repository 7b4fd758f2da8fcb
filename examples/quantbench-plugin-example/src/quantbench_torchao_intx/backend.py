"""torchao int1..int7 weight-only quantization through transformers' `TorchAoConfig`: no calibration.

quantbench ships torchao's int8 and int4 weight-only methods; this plugin adds the bit widths in
between and below (`IntxWeightOnlyConfig`): each group of `group_size` weights shares one scale
and zero point, and the weights are rounded to `bits` bits. torchao keeps them unpacked, one int8
per weight, and dequantizes them in the forward pass, so it runs on any device, CPU included:
the quality numbers are those of the bit width, while the memory is that of int8 storage
(`bits_per_weight` shows it).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from quantbench.api import LoadRequest, PrecisionConfig, QuantizerConfigBackend, compute_dtype_name

SUPPORTED_BITS = range(1, 8)  # torch.int1 .. torch.int7; 8 bits is quantbench's own torchao-int8wo


@dataclass
class IntxSettings(PrecisionConfig):
    """The keys of a torchao-intx precision option: quantbench stores it as the schema `base_torchao_intx`."""

    bits: int = 3  # 1 .. 7
    group_size: int = 32  # weights sharing one scale and zero point
    # The dtype of activations, scales and the layers left unquantized: auto is bfloat16 on GPUs
    # that have it, float16 on older GPUs, float32 on CPU.
    dtype: str = "auto"


def intx_config(settings: IntxSettings) -> Any:
    """The torchao config object for the bit width (imported here: torchao is slow to import)."""
    import torch
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    if settings.bits not in SUPPORTED_BITS:
        raise ValueError(
            f"torchao-intx quantizes weights to 1 to 7 bits, not {settings.bits}; "
            "set precision.bits to one of those (8 bits: precision=torchao-int8wo)"
        )
    return IntxWeightOnlyConfig(
        weight_dtype=getattr(torch, f"int{settings.bits}"), granularity=PerGroup(settings.group_size)
    )


class IntxBackend(QuantizerConfigBackend):
    name = "torchao-intx"
    description = "torchao int1..int7 weight-only quantization (plugin)"
    settings = IntxSettings
    requires = ("torchao",)

    def compute_dtype(self, settings: IntxSettings, request: LoadRequest) -> str:
        return compute_dtype_name(settings.dtype, request.device)

    def quantizer_config(self, settings: IntxSettings, request: LoadRequest) -> Any:
        from transformers import TorchAoConfig

        return TorchAoConfig(intx_config(settings))

    def metrics(self, settings: IntxSettings, request: LoadRequest) -> dict[str, Any]:
        # Columns in the summary: which bit width and library version made these numbers.
        return {"torchao_weight_bits": settings.bits, "torchao_version": importlib.metadata.version("torchao")}
