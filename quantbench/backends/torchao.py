"""torchao through transformers' `TorchAoConfig`: weights quantized while they load, no calibration.

Methods (`method:` in the precision option) and the backend that runs each:
  torchao       int8_weight_only  int8 weights, one scale per output channel; CPU and GPU.
                int8_dynamic      int8 weights, activations quantized to int8 per token at run
                                  time (W8A8); CPU and GPU.
  torchao-int4  int4_weight_only  int4 weights in groups of `group_size`, bfloat16 activations,
                                  through the tile-packed kernel of torch's CUDA build: CUDA GPUs
                                  of compute capability >= 8.0 only (torchao 0.18 has no CPU layout
                                  that transformers can load without the separate mslk package).
  torchao-fp8   float8_dynamic    float8 e4m3 weights and activations, one scale per row: GPUs of
                                  compute capability >= 8.9 (FP8 tensor cores).
Each requirement is its own backend so that `quantbench list` shows it before anything runs.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from quantbench.backends.base import LoadRequest
from quantbench.backends.capability import AMPERE_CAPABILITY, FP8_CAPABILITY
from quantbench.backends.transformers_loading import QuantizerConfigBackend
from quantbench.config.schema import TorchAoPrecisionConfig
from quantbench.runtime.dtypes import compute_dtype_name


def torchao_method(settings: TorchAoPrecisionConfig) -> Any:
    """The torchao config object of the method (imported here: torchao is slow to import)."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        PerRow,
    )

    methods = {
        "int8_weight_only": Int8WeightOnlyConfig,
        "int8_dynamic": Int8DynamicActivationInt8WeightConfig,
        # tile_packed_to_4d is the layout of torch's own int4 CUDA kernel; torchao's default
        # layout needs the separate mslk package.
        "int4_weight_only": lambda: Int4WeightOnlyConfig(
            group_size=int(settings.group_size), int4_packing_format="tile_packed_to_4d"
        ),
        "float8_dynamic": lambda: Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()),
    }
    return methods[settings.method]()


class TorchAoBackend(QuantizerConfigBackend):
    name = "torchao"
    description = "torchao int8 weight-only and int8 dynamic (W8A8), through TorchAoConfig"
    settings = TorchAoPrecisionConfig
    requires = ("torchao",)
    methods: tuple[str, ...] = ("int8_weight_only", "int8_dynamic")
    # The activation dtype the kernels accept; None: precision.dtype (auto: the device's choice).
    activation_dtype: str | None = None

    def compute_dtype(self, settings: TorchAoPrecisionConfig, request: LoadRequest) -> str:
        if settings.method not in self.methods:
            raise ValueError(
                f"backend {self.name} runs precision.method {' or '.join(self.methods)}, not '{settings.method}'; "
                f"use precision=torchao-int8wo, torchao-int8dq, torchao-int4wo or torchao-fp8"
            )
        return self.activation_dtype or compute_dtype_name(settings.dtype, request.device)

    def quantizer_config(self, settings: TorchAoPrecisionConfig, request: LoadRequest) -> Any:
        from transformers import TorchAoConfig

        return TorchAoConfig(torchao_method(settings))

    def metrics(self, settings: TorchAoPrecisionConfig, request: LoadRequest) -> dict[str, Any]:
        group = {"group_size": int(settings.group_size)} if settings.method == "int4_weight_only" else {}
        return {"torchao_method": settings.method, "torchao_version": importlib.metadata.version("torchao"), **group}


class TorchAoInt4Backend(TorchAoBackend):
    name = "torchao-int4"
    description = "torchao int4 weight-only in groups (tile-packed CUDA kernel), through TorchAoConfig"
    methods = ("int4_weight_only",)
    needs = ("torchao int4 weight-only", AMPERE_CAPABILITY)
    activation_dtype = "bfloat16"  # the only activation dtype the int4 kernel accepts


class TorchAoFloat8Backend(TorchAoBackend):
    name = "torchao-fp8"
    description = "torchao float8 dynamic activations and weights, per-row scales, through TorchAoConfig"
    methods = ("float8_dynamic",)
    needs = ("torchao float8", FP8_CAPABILITY)
    activation_dtype = "bfloat16"
