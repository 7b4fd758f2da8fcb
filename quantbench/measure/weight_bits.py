"""bits_per_weight: how much a method really shrinks the weights. The one definition.

    bits_per_weight = bytes stored for the block linear layers' weights × 8
                      ÷ the number of weights of those layers (in_features × out_features each)

The bytes are everything a layer keeps to reproduce its weight: the (packed) values, scales, zero
points, outlier parts, codebooks; the bias is left out (every method keeps it as it is). The layers
are the linear layers inside the model's repeated blocks (decoder layers, encoder layers: a name
with a block index, `model.layers.3.mlp.down_proj`, or `blk.3.ffn_down` in a GGUF file), the same
set for every precision of a model. Token embeddings and the output head are left out: methods
treat them differently (llama.cpp keeps some at higher precision, GPTQ/AWQ leave them alone), and
counting them would blur the comparison. A method that leaves block layers unquantized shows it.
So fp32 is exactly 32, bf16 16, and GGUF rows (quantbench/gguf/files.py, read from the file) use
the same rule through `in_block`.

Which modules are linear layers is decided without a list of libraries: a module with integer
`in_features` and `out_features` (torch's Linear and everything that replaces it: bitsandbytes'
Linear4bit/Linear8bitLt, quanto's QLinear, gptqmodel's QuantLinear, HQQLinear, ...), or
`infeatures` and `outfeatures` (auto-round's QuantLinear). Its bytes are
the storage of every tensor it owns, reached through its parameters, buffers and plain attributes
(dicts, lists, quantization-state objects) and, for tensor subclasses (torchao, quanto), through
`__tensor_flatten__` down to the plain tensors that hold the bytes; each storage counted once.

A layer that keeps its weight where none of these reach (torch.ao's quantized layers, made by
`torch.ao.quantization.quantize_dynamic`, pack it into a C++ object that is no tensor) is asked
through its `weight()` method: the copy it unpacks has the packed weight's values (their stored
dtype: int8, float16) and per-channel scales and zero points. A layer that shows neither is
*unseen*: `bits_per_weight` is then None, never a number that leaves it out (quantbench/measure/
weight_facts.py warns, and takes the backend's own figure where it reports one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    import torch
    from torch import nn

# Attribute names that are not the weight: the bias (kept as it is by every method).
NOT_WEIGHT_STORAGE = frozenset({"bias"})
# How deep plain attributes are followed (module -> quant_state -> state2 -> absmax is 3).
MAX_ATTRIBUTE_DEPTH = 4


def in_block(name: str) -> bool:
    """Whether a dotted module or tensor name lies inside one of the model's repeated blocks: one of
    its parts is a block index (`model.layers.3.self_attn.q_proj`, `blk.3.attn_q.weight`)."""
    return any(part.isdigit() for part in name.split("."))


# The attribute names a linear layer gives its widths: torch's, and those of auto-round's (and
# AutoGPTQ's) QuantLinear, which predate torch's spelling.
WIDTH_ATTRIBUTES = (("in_features", "out_features"), ("infeatures", "outfeatures"))


def linear_widths(module: nn.Module) -> tuple[int, int] | None:
    """(input width, output width) of a linear layer, or None for a module that is not one."""
    for width_in, width_out in WIDTH_ATTRIBUTES:
        widths = getattr(module, width_in, None), getattr(module, width_out, None)
        if all(isinstance(width, int) for width in widths):
            return widths
    return None


def is_linear_layer(module: nn.Module) -> bool:
    return linear_widths(module) is not None


def block_linear_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of each linear layer inside the blocks; a linear module nested inside another
    (a wrapper around nn.Linear) counts once, as the outer one."""
    layers: list[tuple[str, Any]] = []
    for name, module in model.named_modules():
        if not (in_block(name) and is_linear_layer(module)):
            continue
        if layers and name.startswith(layers[-1][0] + "."):
            continue  # inside the layer just taken
        layers.append((name, module))
    return layers


def _plain_tensors(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """The plain tensors holding a tensor's bytes: itself, or a subclass's inner tensors (recursively)."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is None:
        yield tensor
        return
    for inner in flatten()[0]:
        yield from _plain_tensors(getattr(tensor, inner))


def _owned_tensors(value: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """Tensors reachable from a module's attribute value: tensors (and what hangs off them, like
    bitsandbytes' quant_state and SCB), dicts, lists and plain objects, a few levels deep."""
    import torch
    from torch import nn

    if isinstance(value, torch.Tensor):
        yield from _plain_tensors(value)
        extras = vars(value) if hasattr(value, "__dict__") else {}
        for key, item in extras.items():
            if depth < MAX_ATTRIBUTE_DEPTH and not key.startswith("__"):
                yield from _owned_tensors(item, depth + 1)
    elif (
        depth >= MAX_ATTRIBUTE_DEPTH
        or value is None
        or isinstance(value, (str, bytes, int, float, bool, type, torch.dtype, torch.device, nn.Module))
    ):
        return
    elif isinstance(value, dict):
        for item in value.values():
            yield from _owned_tensors(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _owned_tensors(item, depth + 1)
    elif hasattr(value, "__dict__") and not callable(value):
        for item in vars(value).values():
            yield from _owned_tensors(item, depth + 1)


def layer_tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    """Every tensor a linear layer owns for its weight: parameters, buffers and attributes of it and
    of its submodules (a QuantLinear's qweight/scales/qzeros/g_idx, HQQLinear's meta), bias excluded."""
    for owner in module.modules():
        slots = {**owner._parameters, **owner._buffers}
        plain = {key: value for key, value in vars(owner).items() if not key.startswith("_")}
        for key, value in {**plain, **slots}.items():
            if key not in NOT_WEIGHT_STORAGE:
                yield from _owned_tensors(value)


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """The bytes of the distinct storages behind these tensors (a subclass's through its inner
    tensors), each storage counted once (tied weights, shared codebooks); meta tensors hold none."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for tensor in tensors:
        for plain in _plain_tensors(tensor):
            if plain.device.type == "meta":
                continue
            storage = plain.untyped_storage()
            key = (str(plain.device), storage.data_ptr())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
    return total


def hides_its_weight(module: nn.Module) -> bool:
    """Whether a module holds no parameter or buffer and hands its weight out through a `weight()`
    method instead: torch.ao's quantized layers, whose weight is packed into a C++ object."""
    import torch

    weight = getattr(module, "weight", None)
    if not callable(weight) or isinstance(weight, torch.nn.Module):
        return False
    return next(module.parameters(), None) is None and next(module.buffers(), None) is None


def unpacked_weight_bytes(module: nn.Module, with_bias: bool = False) -> int:
    """The bytes a layer that hides its weight keeps for it, sized from the copy `weight()` unpacks:
    the values in the dtype they are stored in (torch.ao unpacks float16 weights as float32), and
    per-channel scales and zero points; its `bias()` too where asked. 0 for any other module."""
    import torch

    if not hides_its_weight(module):
        return 0
    weight = module.weight()
    if not isinstance(weight, torch.Tensor):
        return 0
    stored = getattr(getattr(module, "_packed_params", None), "dtype", None)  # torch.ao: qint8, float16
    itemsize = stored.itemsize if isinstance(stored, torch.dtype) else weight.element_size()
    tensors = []
    per_channel = (torch.per_channel_affine, torch.per_channel_symmetric, torch.per_channel_affine_float_qparams)
    if weight.is_quantized and weight.qscheme() in per_channel:
        tensors += [weight.q_per_channel_scales(), weight.q_per_channel_zero_points()]
    bias = getattr(module, "bias", None)
    bias = bias() if with_bias and callable(bias) else None
    if isinstance(bias, torch.Tensor):
        tensors.append(bias)
    return weight.numel() * itemsize + storage_bytes(tensors)


def unseen_linear_layers(
    model: nn.Module, layers: list[tuple[str, nn.Module]] | None = None
) -> list[tuple[str, nn.Module]]:
    """The linear layers (the block ones, or `layers`) whose weight no tensor and no `weight()`
    method shows: their bytes cannot be counted."""
    if layers is None:
        layers = block_linear_layers(model)
    return [
        (name, module)
        for name, module in layers
        if next(layer_tensors(module), None) is None and not hides_its_weight(module)
    ]


def linear_weight_bytes(layers: list[tuple[str, nn.Module]]) -> int:
    """The bytes stored for these layers' weights (packed ones through `weight()`)."""
    # Each unpacked copy is sized on its own and dropped: a fresh copy may reuse a freed one's
    # address, which the storage de-duplication would take for a shared storage.
    return storage_bytes(tensor for _, module in layers for tensor in layer_tensors(module)) + sum(
        unpacked_weight_bytes(module) for _, module in layers
    )


def bits_per_weight(model: nn.Module) -> float | None:
    """Bits stored per weight of the block linear layers (see the module docstring); None without
    any, or where a layer's weight cannot be seen (unseen_linear_layers)."""
    layers = block_linear_layers(model)
    n_weights = sum(width_in * width_out for width_in, width_out in (linear_widths(module) for _, module in layers))
    if not n_weights or unseen_linear_layers(model, layers):
        return None
    return linear_weight_bytes(layers) * 8 / n_weights
