"""The `kernel` column: which kernel or weight layout ran the model's linear layers.

Read from the loaded model, not from the config: two rows that differ only by the kernel a library
picked (bitsandbytes' quant type, torchao's tensor subclass, quanto's weight qtype) are told apart.
The layer read is the first block linear layer that is quantized (its class or its weight's class
is not torch's own), else the first block linear layer: the same set bits_per_weight counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantbench.measure.weight_bits import block_linear_layers, hides_its_weight

if TYPE_CHECKING:
    from torch import nn


def _library(kind: type) -> str:
    return kind.__module__.split(".")[0]


def _is_torch_dense(module: nn.Module) -> bool:
    import torch

    weight = getattr(module, "weight", None)
    return type(module) is torch.nn.Linear and type(weight) in (torch.Tensor, torch.nn.Parameter)


def _weight_format(module: nn.Module, weight: Any) -> str | None:
    """The weight's own format where the library says it: bnb quant type, quanto qtype."""
    quant_state = getattr(weight, "quant_state", None) or getattr(module, "quant_state", None)
    if getattr(quant_state, "quant_type", None):
        return str(quant_state.quant_type)
    qtype = getattr(module, "weight_qtype", None)
    if qtype is not None:
        return getattr(qtype, "name", str(qtype))
    if type(weight).__name__ == "Int8Params":
        return "int8"
    return None


def describe_linear(module: nn.Module) -> str:
    """'torch.nn.Linear float32', 'bitsandbytes Linear4bit nf4',
    'torchao Int8Tensor, dynamic int8 activations, on torch.nn.Linear float32', 'optimum QLinear qint8',
    'gptqmodel TorchQuantLinear', 'torch DynamicQuantizedLinear qint8'."""
    import torch

    weight = getattr(module, "weight", None)
    if hides_its_weight(module):
        # torch.ao's packed layers: the name they give themselves says dynamic or static
        # (DynamicQuantizedLinear), the packed parameters' dtype the format (qint8, float16).
        stored = getattr(getattr(module, "_packed_params", None), "dtype", None)
        stored_name = [str(stored).removeprefix("torch.")] if stored else []
        return " ".join([_library(type(module)), module._get_name(), *stored_name])
    if _is_torch_dense(module):
        return f"torch.nn.Linear {str(weight.dtype).removeprefix('torch.')}"
    if type(module) is torch.nn.Linear and isinstance(weight, torch.Tensor):
        # A tensor subclass carries the method (torchao): its class names the layout, and its
        # activation settings tell weight-only from dynamic activation quantization.
        activations = getattr(weight, "act_quant_kwargs", None)
        dynamic = ""
        if activations is not None:
            dynamic = (
                ", dynamic "
                + type(activations).__name__.removeprefix("QuantizeTensorTo").removesuffix("Kwargs").lower()
                + " activations,"
            )
        return (
            f"{_library(type(weight))} {type(weight).__name__}{dynamic} "
            f"on torch.nn.Linear {str(weight.dtype).removeprefix('torch.')}"
        )
    parts = [_library(type(module)), type(module).__name__]
    weight_format = _weight_format(module, weight)
    if weight_format:
        parts.append(weight_format)
    return " ".join(parts)


def linear_kernel(model: nn.Module) -> str | None:
    """The description of the first quantized block linear layer (else the first one), or None."""
    layers = [module for _, module in block_linear_layers(model)]
    if not layers:
        return None
    quantized = [module for module in layers if not _is_torch_dense(module)]
    return describe_linear((quantized or layers)[0])
