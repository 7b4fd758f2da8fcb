"""bitsandbytes through transformers' BitsAndBytesConfig: LLM.int8() and 4-bit NF4/FP4."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantbench.backends.base import LoadedModel, LoadRequest
from quantbench.backends.transformers_loading import QuantizerConfigBackend
from quantbench.config.schema import BnbFourBitPrecisionConfig, BnbInt8PrecisionConfig
from quantbench.errors import JobSkipped
from quantbench.runtime.dtypes import compute_dtype_name, torch_dtype

if TYPE_CHECKING:
    from torch import nn


class _BitsAndBytesBackend(QuantizerConfigBackend):
    requires = ("bitsandbytes",)

    def load(self, request: LoadRequest) -> LoadedModel:
        # Quiet bitsandbytes' per-call CPU warnings (see quantbench.runtime.logs); importing it first
        # creates the module loggers the filter goes on.
        import bitsandbytes  # noqa: F401

        from quantbench.runtime.logs import quiet_repeated_warnings

        quiet_repeated_warnings()
        return super().load(request)


class BnbInt8Backend(_BitsAndBytesBackend):
    name = "bnb-int8"
    description = "bitsandbytes LLM.int8() 8-bit weights"
    settings = BnbInt8PrecisionConfig

    def quantizer_config(self, settings: BnbInt8PrecisionConfig, request: LoadRequest):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_8bit=True,
            llm_int8_threshold=float(settings.threshold),
            llm_int8_skip_modules=list(settings.skip_modules) or None,
        )


# bitsandbytes' CPU 4-bit matmul (0.50) works on whole tiles: a quantized layer whose input width
# is not a multiple of 64 (the quantization block) or whose output width is not a multiple of 32
# fails at its first forward pass with an opaque assertion or reshape error.
CPU_4BIT_INPUT_MULTIPLE = 64
CPU_4BIT_OUTPUT_MULTIPLE = 32


def cpu_4bit_misfits(model: nn.Module) -> list[tuple[str, int, int]]:
    """(name, input width, output width) of each 4-bit layer the CPU kernels cannot multiply."""
    import bitsandbytes as bnb

    return [
        (name, module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, bnb.nn.Linear4bit)
        and (module.in_features % CPU_4BIT_INPUT_MULTIPLE or module.out_features % CPU_4BIT_OUTPUT_MULTIPLE)
    ]


def cpu_4bit_skip_reason(misfits: list[tuple[str, int, int]], skip_modules: list[str]) -> str:
    examples = ", ".join(f"{name} ({width_in}->{width_out})" for name, width_in, width_out in misfits[:3])
    leaf_names = dict.fromkeys(name.rsplit(".", 1)[-1] for name, _, _ in misfits)
    keep = ",".join(dict.fromkeys([*skip_modules, *leaf_names]))
    return (
        f"bitsandbytes' CPU 4-bit kernels need each quantized layer's input width to be a multiple of "
        f"{CPU_4BIT_INPUT_MULTIPLE} and output width of {CPU_4BIT_OUTPUT_MULTIPLE}; {len(misfits)} layers are not, "
        f"e.g. {examples}: run on a GPU, or keep them unquantized with precision.skip_modules=[{keep}]"
    )


class BnbFourBitBackend(_BitsAndBytesBackend):
    name = "bnb-nf4"
    description = "bitsandbytes 4-bit NF4/FP4 weights"
    settings = BnbFourBitPrecisionConfig

    def load(self, request: LoadRequest) -> LoadedModel:
        loaded = super().load(request)
        if not request.device.is_cuda:
            # Checked here, on the loaded model, because which layers get quantized is decided by
            # transformers (skip_modules, tied heads), not by the config alone.
            misfits = cpu_4bit_misfits(loaded.model)
            if misfits:
                raise JobSkipped(cpu_4bit_skip_reason(misfits, list(request.precision.skip_modules)))
        return loaded

    def quantizer_config(self, settings: BnbFourBitPrecisionConfig, request: LoadRequest):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=settings.quant_type,
            bnb_4bit_use_double_quant=bool(settings.double_quant),
            bnb_4bit_compute_dtype=torch_dtype(compute_dtype_name(settings.compute_dtype, request.device)),
            llm_int8_skip_modules=list(settings.skip_modules) or None,
        )
