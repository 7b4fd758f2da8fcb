"""GPU generation requirements: the one sentence a `skipped` row and `quantbench list` both show."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quantbench.runtime.device import Device

# FP8 tensor cores (e4m3/e5m2 matmuls): Ada (8.9) and Hopper (9.0) onwards.
FP8_CAPABILITY = (8, 9)
# bfloat16 and the int4 tile-packed kernel of torch's CUDA build: Ampere (8.0) onwards.
AMPERE_CAPABILITY = (8, 0)


def describe_device(device: Device) -> str:
    if not device.is_cuda:
        return device.type
    capability = f" ({device.capability[0]}.{device.capability[1]})" if device.capability else ""
    return f"{device.name}{capability}"


def capability_reason(method: str, minimum: tuple[int, int], device: Device) -> str | None:
    """'fp8 needs compute capability >= 8.9; this device: cpu', or None where the device has it."""
    if device.is_cuda and device.capability is not None and device.capability >= minimum:
        return None
    return f"{method} needs compute capability >= {minimum[0]}.{minimum[1]}; this device: {describe_device(device)}"
