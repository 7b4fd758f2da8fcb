"""bitsandbytes through transformers' BitsAndBytesConfig: LLM.int8() and 4-bit NF4/FP4."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantbench.backends.base import LoadedModel, LoadRequest, missing_package_reason
from quantbench.backends.dense import load_with_transformers, torch_dtype

if TYPE_CHECKING:
    from quantbench.device import Device
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec


def compute_dtype_name(requested: str, device: "Device") -> str:
    """`auto`: bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU."""
    if requested != "auto":
        return requested
    if not device.is_cuda:
        return "float32"
    return "bfloat16" if device.capability and device.capability >= (8, 0) else "float16"


class _BitsAndBytesBackend:
    name = "bnb"
    description = "bitsandbytes"

    def unavailable_reason(self, device: "Device") -> str | None:
        return missing_package_reason("bitsandbytes")

    def unsupported_reason(self, family: "ModelFamily", model: "ModelSpec | None") -> str | None:
        return None

    def load(self, request: LoadRequest) -> LoadedModel:
        # Quiet bitsandbytes' per-call CPU warnings before its first import (see quantbench.logs).
        from quantbench.logs import quiet_repeated_warnings

        quiet_repeated_warnings()
        # Each subclass builds its own BitsAndBytesConfig.
        return load_with_transformers(request, quantization_config=self.quantization_config(request))


class BnbInt8Backend(_BitsAndBytesBackend):
    name = "bnb-int8"
    description = "bitsandbytes LLM.int8() 8-bit weights"

    def quantization_config(self, request: LoadRequest):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_8bit=True,
            llm_int8_threshold=float(request.precision.threshold),
            llm_int8_skip_modules=list(request.precision.skip_modules) or None,
        )


class BnbFourBitBackend(_BitsAndBytesBackend):
    name = "bnb-nf4"
    description = "bitsandbytes 4-bit NF4/FP4 weights"

    def quantization_config(self, request: LoadRequest):
        from transformers import BitsAndBytesConfig

        precision = request.precision
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=precision.quant_type,
            bnb_4bit_use_double_quant=bool(precision.double_quant),
            bnb_4bit_compute_dtype=torch_dtype(compute_dtype_name(precision.compute_dtype, request.device)),
            llm_int8_skip_modules=list(precision.skip_modules) or None,
        )
