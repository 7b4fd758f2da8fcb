"""Does a quantization group size fit a model? Checked from the config, before any weights load.

gptqmodel quantizes every Linear layer inside the decoder blocks (not the output head) in groups
of `group_size` input columns. Its fast CPU kernels and AWQ need every such layer's input width
to be a multiple of the group size; otherwise it falls back to a slow generic kernel. SmolLM2-135M
(width 576) fits 64 but not 128.
"""

from __future__ import annotations

from typing import Any

from quantbench.errors import JobSkipped

# Group sizes gptqmodel's kernels implement; -1 is one group per row (no grouping).
CANDIDATE_GROUP_SIZES = (16, 32, 64, 128, 256, 512, 1024)
DEFAULT_GROUP_SIZE = 128


def resolve_group_size(configured: int | None, model_default: int | None, default: int = DEFAULT_GROUP_SIZE) -> int:
    """The precision's setting, else the model's quant_group_size, else `default` (gptqmodel's 128)."""
    if configured is not None:
        return int(configured)
    if model_default is not None:
        return int(model_default)
    return default


def quantized_input_widths(config: Any, trust_remote_code: bool = False) -> dict[int, str]:
    """Distinct input widths of the Linear layers that get quantized, each with one layer named.

    The model is built on the meta device from its transformers config: no weights, no memory,
    and every architecture transformers knows is covered without a table of config field names.
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    head = model.get_output_embeddings()
    widths: dict[int, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            widths.setdefault(int(module.in_features), name)
    return widths


def fitting_group_sizes(widths: list[int]) -> list[int]:
    return [size for size in CANDIDATE_GROUP_SIZES if all(width % size == 0 for width in widths)]


def check_group_size(group_size: int, widths: dict[int, str], model_name: str, engine: str = "gptqmodel") -> None:
    """Raise JobSkipped naming the width and the group sizes that would fit, when one does not."""
    if group_size == -1:
        return
    if group_size not in CANDIDATE_GROUP_SIZES:
        choices = ", ".join(str(size) for size in (-1, *CANDIDATE_GROUP_SIZES))
        raise JobSkipped(f"group size {group_size} is not one {engine}'s kernels implement; choose one of: {choices}")
    misfits = sorted(width for width in widths if width % group_size)
    if misfits:
        width = misfits[0]
        fits = ", ".join(str(size) for size in fitting_group_sizes(list(widths))) or "none (use -1, one group per row)"
        raise JobSkipped(
            f"group size {group_size} does not divide input width {width} of layer '{widths[width]}' in model "
            f"'{model_name}'; group sizes that fit: {fits} (set precision.group_size or model.quant_group_size)"
        )
