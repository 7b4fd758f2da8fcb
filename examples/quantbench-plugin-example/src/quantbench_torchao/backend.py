"""torchao quantization through transformers' `TorchAoConfig`: quantized at load time, no calibration.

Methods (`method:` in the precision option):
  int8_weight_only  int8 weights, one scale per output channel; activations stay in the compute
                    dtype. Halves (vs fp16) or quarters (vs fp32) the weights; CPU and GPU.
  int8_dynamic      int8 weights and int8 activations quantized per token at run time (W8A8):
                    integer matmuls where the hardware has them; CPU and GPU.
  int4_weight_only  int4 weights in groups of `group_size`, bfloat16 activations, through the
                    tinygemm kernel that ships with CUDA builds of torch: CUDA GPUs only.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from quantbench.api import JobSkipped, LoadRequest, PrecisionConfig, QuantizerConfigBackend, compute_dtype_name


@dataclass
class TorchAoSettings(PrecisionConfig):
    """The keys of a torchao precision option: quantbench stores it as the schema `base_torchao`."""

    method: str = "int8_weight_only"  # int8_weight_only | int8_dynamic | int4_weight_only
    group_size: int = 128  # int4_weight_only: weights sharing one scale and zero point
    # The dtype of activations and of the layers left unquantized: auto is bfloat16 on GPUs
    # that have it, float16 on older GPUs, float32 on CPU.
    dtype: str = "auto"


def torchao_method(settings: TorchAoSettings) -> Any:
    """The torchao config object of the method (imported here: torchao is slow to import)."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    methods = {
        "int8_weight_only": Int8WeightOnlyConfig,
        "int8_dynamic": Int8DynamicActivationInt8WeightConfig,
        # tile_packed_to_4d is the layout of torch's own int4 CUDA kernel; torchao's default
        # layout needs the separate mslk package.
        "int4_weight_only": lambda: Int4WeightOnlyConfig(group_size=settings.group_size, int4_packing_format="tile_packed_to_4d"),
    }
    if settings.method not in methods:
        raise ValueError(f"unknown torchao method '{settings.method}'; choose one of: {', '.join(methods)}")
    return methods[settings.method]()


class TorchAoBackend(QuantizerConfigBackend):
    name = "torchao"
    description = "torchao int8/int4 weight-only and int8 dynamic quantization (plugin)"
    settings = TorchAoSettings
    requires = ("torchao",)

    def compute_dtype(self, settings: TorchAoSettings, request: LoadRequest) -> str:
        if settings.method != "int4_weight_only":
            return compute_dtype_name(settings.dtype, request.device)
        if not request.device.is_cuda:
            raise JobSkipped("torchao int4_weight_only needs a CUDA GPU (its kernel has no CPU version); use int8_weight_only on CPU")
        return "bfloat16"  # the only activation dtype the int4 kernel accepts

    def quantizer_config(self, settings: TorchAoSettings, request: LoadRequest) -> Any:
        from transformers import TorchAoConfig

        return TorchAoConfig(torchao_method(settings))

    def metrics(self, settings: TorchAoSettings, request: LoadRequest) -> dict[str, Any]:
        # Columns in the summary: which method and library version made these numbers.
        return {"torchao_method": settings.method, "torchao_version": importlib.metadata.version("torchao")}
