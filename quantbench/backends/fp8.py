"""FP8 through transformers' `FineGrainedFP8Config`: float8 e4m3 weights with one scale per block
of `weight_block_size`, activations quantized per token group at run time. The format the texts
recommend on H100-class GPUs; it needs FP8 tensor cores (compute capability >= 8.9). transformers
would silently dequantize to bf16 on an older GPU: that row would not be FP8, so it is skipped."""

from __future__ import annotations

from typing import Any

from quantbench.backends.base import LoadRequest
from quantbench.backends.capability import FP8_CAPABILITY
from quantbench.backends.transformers_loading import QuantizerConfigBackend
from quantbench.config.schema import Fp8PrecisionConfig


class Fp8Backend(QuantizerConfigBackend):
    name = "fp8"
    description = "transformers fine-grained FP8 (e4m3 weights in blocks, dynamic activations)"
    settings = Fp8PrecisionConfig
    requires = ("accelerate",)
    needs = ("fp8", FP8_CAPABILITY)

    def compute_dtype(self, settings: Fp8PrecisionConfig, request: LoadRequest) -> str:
        return "bfloat16"  # the unquantized layers and the activations between the FP8 matmuls

    def quantizer_config(self, settings: Fp8PrecisionConfig, request: LoadRequest) -> Any:
        from transformers import FineGrainedFP8Config

        return FineGrainedFP8Config(
            activation_scheme="dynamic", weight_block_size=tuple(int(size) for size in settings.weight_block_size)
        )

    def metrics(self, settings: Fp8PrecisionConfig, request: LoadRequest) -> dict[str, Any]:
        return {"fp8_weight_block_size": "x".join(str(size) for size in settings.weight_block_size)}
