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
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from quantbench.backends.base import LoadedModel, LoadRequest, missing_package_reason
from quantbench.backends.bitsandbytes import compute_dtype_name
from quantbench.backends.dense import load_with_transformers, torch_dtype
from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from quantbench.device import Device
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec

METHODS = ("int8_weight_only", "int8_dynamic", "int4_weight_only")


@dataclass
class TorchAoPrecision:
    """Every key a precision option of this backend may set; any other key is a typo."""

    name: str
    backend: str
    method: str = "int8_weight_only"
    group_size: int = 128  # int4_weight_only: weights sharing one scale and zero point
    # The dtype of activations and of the layers left unquantized: auto is bfloat16 on GPUs
    # that have it, float16 on older GPUs, float32 on CPU.
    dtype: str = "auto"


def read_settings(precision: DictConfig) -> TorchAoPrecision:
    """The precision option, checked: the YAML is plain (no schema in quantbench's ConfigStore)."""
    accepted = [field.name for field in fields(TorchAoPrecision)]
    unknown = sorted(set(precision.keys()) - set(accepted))
    if unknown:
        raise ValueError(
            f"precision '{precision.name}' sets {', '.join(unknown)}, which the torchao backend does not know; "
            f"use only: {', '.join(accepted)}"
        )
    settings = TorchAoPrecision(**OmegaConf.to_container(precision, resolve=True))
    if settings.method not in METHODS:
        raise ValueError(f"unknown torchao method '{settings.method}'; choose one of: {', '.join(METHODS)}")
    return settings


def quantization_method(settings: TorchAoPrecision) -> Any:
    """The torchao config object for one method (imported here: torchao is slow to import)."""
    from torchao.quantization import Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    if settings.method == "int8_weight_only":
        return Int8WeightOnlyConfig()
    if settings.method == "int8_dynamic":
        return Int8DynamicActivationInt8WeightConfig()
    # tile_packed_to_4d is the layout of torch's own int4 CUDA kernel; torchao's default layout
    # needs the separate mslk package.
    return Int4WeightOnlyConfig(group_size=settings.group_size, int4_packing_format="tile_packed_to_4d")


class TorchAoBackend:
    name = "torchao"
    description = "torchao int8/int4 weight-only and int8 dynamic quantization (plugin)"

    def unavailable_reason(self, device: "Device") -> str | None:
        return missing_package_reason("torchao")

    def unsupported_reason(self, family: "ModelFamily", model: "ModelSpec | None") -> str | None:
        return None  # TorchAoConfig works on any transformers model: every family loads through from_pretrained

    def load(self, request: LoadRequest) -> LoadedModel:
        from transformers import TorchAoConfig

        settings = read_settings(request.precision)
        dtype = compute_dtype_name(settings.dtype, request.device)
        if settings.method == "int4_weight_only":
            if not request.device.is_cuda:
                raise JobSkipped("torchao int4_weight_only needs a CUDA GPU (its kernel has no CPU version); use int8_weight_only on CPU")
            dtype = "bfloat16"  # the only activation dtype the int4 kernel accepts
        loaded = load_with_transformers(
            request, dtype=torch_dtype(dtype), quantization_config=TorchAoConfig(quantization_method(settings))
        )
        # Columns in the summary: which method and library version made these numbers.
        loaded.metrics.update(
            torchao_method=settings.method,
            torchao_version=importlib.metadata.version("torchao"),
            compute_dtype=dtype,
        )
        return loaded
