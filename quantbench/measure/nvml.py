"""NVML, opened once per process: a device handle, or the one-line reason there is none.

Energy, telemetry and the shared-GPU check all read the same NVML device; this module owns how
it is opened and how its failures read, so the three say the same thing on a machine without it.
"""

from __future__ import annotations

from typing import Any


class NvmlUnavailable(Exception):
    """NVML (or the device) cannot be read here; the message says why, in one line."""


def nvml() -> Any:
    """The initialised pynvml module; NvmlUnavailable naming what is missing."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("pynvml is not installed (pip install nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()  # reference-counted by NVML: calling it again is cheap and harmless
    except pynvml.NVMLError as error:
        raise NvmlUnavailable(f"NVML cannot start: {error}") from None
    return pynvml


def nvml_handle(index: int) -> Any:
    """The NVML handle of CUDA device `index`.

    NVML numbers devices in PCI order, CUDA (by default) fastest first; with
    CUDA_DEVICE_ORDER=PCI_BUS_ID or a single visible GPU the two agree."""
    pynvml = nvml()
    try:
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as error:
        raise NvmlUnavailable(f"NVML has no GPU {index}: {error}") from None


def nvml_error_types() -> tuple[type[BaseException], ...]:
    """What a read of an opened handle can raise (NotSupported on older boards, GPU lost...)."""
    try:
        import pynvml
    except ImportError:
        return ()
    return (pynvml.NVMLError,)
