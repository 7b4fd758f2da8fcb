"""Torch dtypes by name, and the compute dtype `auto` stands for on a device.

Config files name dtypes as strings (`float16`); torch is imported only when one is turned into a
torch dtype, so that reading configs and listing plugins stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantbench.runtime.device import Device

DTYPE_NAMES = ("float32", "float16", "bfloat16")


def torch_dtype(name: str):
    """The torch dtype called `name` (one of DTYPE_NAMES)."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype '{name}'; choose one of: {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def compute_dtype_name(requested: str, device: Device) -> str:
    """`auto`: bfloat16 on GPUs that have it, float16 on older GPUs, float32 on CPU."""
    if requested != "auto":
        return requested
    if not device.is_cuda:
        return "float32"
    return "bfloat16" if device.capability and device.capability >= (8, 0) else "float16"
