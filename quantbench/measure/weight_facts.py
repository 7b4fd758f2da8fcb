"""The weight columns of a result row: `weight_memory_gb`, `bits_per_weight`, `kernel`.

quantbench measures them from the loaded model (memory.py, weight_bits.py, linear_kernel.py), the
same way for every backend. A backend may report any of them itself in `LoadedModel.metrics`, and
its figure stands: it knows what the model does not show (a kernel it picked, weights kept outside
the model). Where quantbench cannot see a linear layer's weight (no tensor and no `weight()`
method shows it) and the backend reports nothing, the column is null with one warning naming the
layers: never 0, never a sum that leaves those layers out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from quantbench.measure.linear_kernel import linear_kernel
from quantbench.measure.memory import GB, weight_memory_bytes
from quantbench.measure.weight_bits import bits_per_weight, block_linear_layers, is_linear_layer, unseen_linear_layers

if TYPE_CHECKING:
    from torch import nn

# The columns a backend may report itself (docs/plugins.md); any other metric it reports is a
# column of its own beside them.
BACKEND_FIGURES = ("weight_memory_gb", "bits_per_weight", "kernel")

log = logging.getLogger("quantbench")


def _unseen_warning(column: str, unseen: list[tuple[str, nn.Module]]) -> str:
    kinds = ", ".join(sorted({type(module).__name__ for _, module in unseen}))
    if len(unseen) > 1:
        layers = f"{len(unseen)} linear layers ({unseen[0][0]}, ...: {kinds})"
    else:
        layers = f"the linear layer {unseen[0][0]} ({kinds})"
    return (
        f"{column} left null: quantbench cannot see the weights of {layers}: no parameter, buffer, tensor "
        f"attribute or weight() method holds them; the backend can report its own {column} in "
        "LoadedModel.metrics (docs/plugins.md)"
    )


def weight_metrics(model: nn.Module, reported: dict[str, Any]) -> dict[str, Any]:
    """The three weight columns: the backend's own figure (`reported`) where it gives one, else measured."""
    metrics: dict[str, Any] = {}
    if "weight_memory_gb" not in reported:
        every_linear = [(name, module) for name, module in model.named_modules() if is_linear_layer(module)]
        unseen = unseen_linear_layers(model, every_linear)
        if unseen:
            log.warning(_unseen_warning("weight_memory_gb", unseen))
        metrics["weight_memory_gb"] = None if unseen else weight_memory_bytes(model) / GB
    if "bits_per_weight" not in reported:
        # The one definition of how much the weights shrank (quantbench/measure/weight_bits.py).
        unseen = unseen_linear_layers(model, block_linear_layers(model))
        if unseen:
            log.warning(_unseen_warning("bits_per_weight", unseen))
        metrics["bits_per_weight"] = bits_per_weight(model)
    if "kernel" not in reported:
        metrics["kernel"] = linear_kernel(model)  # what ran the linear layers
    return {**metrics, **{key: reported[key] for key in BACKEND_FIGURES if key in reported}}
