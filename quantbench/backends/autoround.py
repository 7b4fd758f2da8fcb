"""Intel AutoRound: weight rounding tuned by signed gradient descent, calibrated once and cached.

AutoRound shares everything but its library with GPTQ and AWQ (CalibratedBackend): the same
calibration text and windows, the same group-size check, the same cache of quantized checkpoints
keyed by model, settings, calibration and library version, the same child process that builds a
missing one. Its checkpoint is saved in the `auto_round` format, which transformers loads through
its AutoRoundConfig quantizer onto auto-round's own inference kernels.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

from quantbench.backends.base import Requirement, missing_package_reason
from quantbench.backends.gptq_awq import (
    SUPPORTED_FAMILY,
    CalibratedBackend,
    prequantized_method,
    quantized_with,
    transformers_config,
)
from quantbench.runtime.dtypes import torch_dtype

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device


REQUIREMENT = Requirement("auto-round", module="auto_round")


class AutoRoundBackend(CalibratedBackend):
    method = "autoround"
    name = "autoround"
    description = "Intel AutoRound weight-only quantization (auto-round), calibrated once and cached"
    supported_bits = (2, 3, 4, 8)
    engine = "auto-round"
    quantize_module = "quantbench.backends.autoround_quantize"

    def unavailable_reason(self, device: Device) -> str | None:
        return missing_package_reason(REQUIREMENT)

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        if family.name != SUPPORTED_FAMILY:
            return f"autoround quantizes decoder-only language models here; family '{family.name}' is not one"
        if model is None:
            return None
        prequantized = prequantized_method(model)
        if prequantized is not None:
            return f"model '{model.name}' is a {prequantized} checkpoint; run it with precision={prequantized}"
        already = quantized_with(transformers_config(model))
        if already is not None:
            return f"model '{model.name}' is already quantized ({already}); point the model at full-precision weights"
        return None

    # ---- the engine ------------------------------------------------------------------------------
    def prepare_engine(self) -> None:
        pass  # the child imports auto-round to quantize; transformers imports it to load

    def announce_quantization(self) -> None:
        pass  # nothing is compiled on first use

    def engine_version(self) -> str:
        return importlib.metadata.version(REQUIREMENT.package)

    def engine_environment(self) -> dict[str, str]:
        return {}

    def knobs(self, precision: DictConfig) -> dict[str, Any]:
        return {"sym": bool(precision.sym), "iters": int(precision.iters), "batch_size": int(precision.batch_size)}

    # ---- inference -------------------------------------------------------------------------------
    def _load_cached(self, path: str, device: Device, dtype: str) -> tuple[Any, str]:
        """transformers loads the checkpoint (its quantization_config names auto-round); the kernel is
        the module auto-round put in place of each Linear layer, e.g. qlinear_torch_zp.QuantLinear."""
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = {} if dtype == "auto" else {"dtype": torch_dtype(dtype)}
        model = AutoModelForCausalLM.from_pretrained(path, device_map=device.torch_device, **kwargs)
        model.eval()
        kernels = sorted(
            {
                f"{type(module).__module__.rsplit('.', 1)[-1]}.{type(module).__name__}"
                for module in model.modules()
                if type(module).__module__.startswith("auto_round")
            }
        )
        return model, "+".join(kernels) or "none"
