"""Dense torch dtypes: fp32, fp16, bf16. The reference every quantization method is measured against."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantbench.backends.base import LoadedModel, LoadRequest
from quantbench.backends.transformers_loading import load_with_transformers
from quantbench.runtime.dtypes import torch_dtype

if TYPE_CHECKING:
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device


class DenseBackend:
    dtype = "float32"
    name = "fp32"
    description = "dense torch weights"

    def unavailable_reason(self, device: Device) -> str | None:
        if self.dtype == "bfloat16" and device.is_cuda and device.capability and device.capability < (8, 0):
            return (
                "bfloat16 needs compute capability >= 8.0; "
                f"{device.name} has {device.capability[0]}.{device.capability[1]}"
            )
        return None

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        return None

    def load(self, request: LoadRequest) -> LoadedModel:
        return load_with_transformers(request, dtype=torch_dtype(request.precision.dtype))


class Float32Backend(DenseBackend):
    dtype, name, description = "float32", "fp32", "dense float32 (torch)"


class Float16Backend(DenseBackend):
    dtype, name, description = "float16", "fp16", "dense float16 (torch)"


class BFloat16Backend(DenseBackend):
    dtype, name, description = "bfloat16", "bf16", "dense bfloat16 (torch)"
