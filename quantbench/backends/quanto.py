"""optimum-quanto weights through transformers' `QuantoConfig`: quantized while they load, no
calibration; int8 weights keep one scale per output channel, int4/int2 one scale and shift per
group. Runs on CPU and GPU (quanto's own kernels where it has them, else dequantize-and-matmul)."""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Any, Callable

from quantbench.backends.base import LoadedModel, LoadRequest, Requirement
from quantbench.backends.transformers_loading import QuantizerConfigBackend
from quantbench.config.schema import QuantoPrecisionConfig
from quantbench.runtime.dtypes import compute_dtype_name

QUANTO_WEIGHTS = ("int8", "int4", "int2", "float8")
# quanto's packed (int4/int2) weights transpose themselves in every forward pass, which fails under
# torch.inference_mode ("Cannot set version_counter for inference tensor", optimum-quanto 0.2.7);
# the families generate and score in inference mode, so these layers run outside it (no_grad).
PACKED_WEIGHTS = ("int4", "int2")


def _outside_inference_mode(forward: Callable[..., Any]) -> Callable[..., Any]:
    import torch

    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():
            return forward(*args, **kwargs)

    return run


class QuantoBackend(QuantizerConfigBackend):
    name = "quanto"
    description = "optimum-quanto int8/int4 weights, through QuantoConfig"
    settings = QuantoPrecisionConfig
    requires = (Requirement("optimum-quanto", module="optimum.quanto"),)

    def load(self, request: LoadRequest) -> LoadedModel:
        loaded = super().load(request)
        if request.precision.weights in PACKED_WEIGHTS:
            from optimum.quanto import QLinear

            for module in loaded.model.modules():
                if isinstance(module, QLinear):
                    module.forward = _outside_inference_mode(module.forward)
        return loaded

    def compute_dtype(self, settings: QuantoPrecisionConfig, request: LoadRequest) -> str:
        if settings.weights not in QUANTO_WEIGHTS:
            raise ValueError(
                f"unknown precision.weights '{settings.weights}' for quanto; choose one of: {', '.join(QUANTO_WEIGHTS)}"
            )
        return compute_dtype_name(settings.dtype, request.device)

    def quantizer_config(self, settings: QuantoPrecisionConfig, request: LoadRequest) -> Any:
        from transformers import QuantoConfig

        return QuantoConfig(weights=settings.weights)

    def metrics(self, settings: QuantoPrecisionConfig, request: LoadRequest) -> dict[str, Any]:
        return {"quanto_weights": settings.weights, "quanto_version": importlib.metadata.version("optimum-quanto")}
