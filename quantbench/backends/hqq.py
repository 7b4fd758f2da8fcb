"""HQQ (half-quadratic quantization) through the hqq library's own model API: no calibration.

HQQ fits each group's scale and zero point by minimising the weight error directly (a
half-quadratic solver on the weights alone), so it needs no calibration text and quantizes a
135M model in seconds on a CPU. transformers 5.24's `HqqConfig` refuses to run ("not available
yet"), so the backend loads the full-precision model through the family and hands it to
`AutoHQQHFModel.quantize_model`, which replaces every decoder Linear layer (not `lm_head`) with an
`HQQLinear` holding packed weights plus one scale and one zero point per group, in the compute dtype.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import TYPE_CHECKING

from quantbench.backends.base import LoadedModel, LoadRequest, missing_package_reason, read_settings
from quantbench.backends.group_size import check_group_size, quantized_input_widths, resolve_group_size
from quantbench.backends.transformers_loading import load_with_transformers
from quantbench.config.schema import HqqPrecisionConfig
from quantbench.errors import JobSkipped
from quantbench.runtime.dtypes import compute_dtype_name, torch_dtype

if TYPE_CHECKING:
    from quantbench.families.base import ModelFamily
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device


SUPPORTED_FAMILY = "decoder"
SUPPORTED_BITS = (8, 4, 3, 2, 1)
DEFAULT_GROUP_SIZE = 64  # HQQ's own recommendation for 4-bit weights


def hqq_group_size(settings: HqqPrecisionConfig, request: LoadRequest) -> int:
    """The configured group size, else the model's quant_group_size, else 64; JobSkipped where it does
    not divide a quantized layer's input width (checked from the config, before any weights load)."""
    spec = request.model
    group_size = resolve_group_size(
        settings.group_size, spec.config.get("quant_group_size"), default=DEFAULT_GROUP_SIZE
    )
    from quantbench.backends.gptq_awq import transformers_config

    widths = quantized_input_widths(transformers_config(spec), trust_remote_code=bool(spec.config.trust_remote_code))
    check_group_size(group_size, widths, spec.name, engine="hqq")
    return group_size


def hqq_kernel(bits: int, group_size: int, compute_dtype: str) -> str:
    """The forward path HQQLinear runs (a class-wide setting of the hqq library): the `kernel` column."""
    from hqq.core.quantize import HQQLinear

    return f"HQQLinear {HQQLinear.backend.name.lower()} backend, {bits}-bit, group {group_size}, {compute_dtype}"


class HqqBackend:
    name = "hqq"
    description = "HQQ half-quadratic weight quantization (hqq library), calibration-free"

    def unavailable_reason(self, device: Device) -> str | None:
        return missing_package_reason("hqq")

    def unsupported_reason(self, family: ModelFamily, model: ModelSpec | None) -> str | None:
        if family.name != SUPPORTED_FAMILY:
            # hqq's model patcher walks `model.model.layers`: decoder-only language models.
            return f"hqq quantizes decoder-only language models (model.model.layers); family '{family.name}' is not one"
        return None

    def load(self, request: LoadRequest) -> LoadedModel:
        settings = read_settings(HqqPrecisionConfig, request.precision)
        if settings.bits not in SUPPORTED_BITS:
            raise JobSkipped(
                f"hqq quantizes to {', '.join(map(str, SUPPORTED_BITS))} bits, not {settings.bits}; "
                "set precision.bits to one of those"
            )
        group_size = hqq_group_size(settings, request)
        dtype = compute_dtype_name(settings.compute_dtype, request.device)

        from hqq.core.quantize import BaseQuantizeConfig
        from hqq.models.hf.base import AutoHQQHFModel

        loaded = load_with_transformers(request, dtype=torch_dtype(dtype))
        started = time.perf_counter()
        # The layers are replaced in place on the request's device; lm_head stays in the compute dtype.
        AutoHQQHFModel.quantize_model(
            loaded.model,
            quant_config=BaseQuantizeConfig(nbits=settings.bits, group_size=group_size),
            compute_dtype=torch_dtype(dtype),
            device=request.device.torch_device,
        )
        loaded.model.eval()
        loaded.metrics.update(
            {
                "quantize_s": time.perf_counter() - started,  # every job: nothing is cached
                "kernel": hqq_kernel(settings.bits, group_size, dtype),
                "compute_dtype": dtype,
                "bits": settings.bits,
                "group_size": group_size,
                "hqq_version": importlib.metadata.version("hqq"),
            }
        )
        return loaded
