"""The device a job runs on: resolved once from `hardware.device` (auto | cpu | cuda[:N])."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from quantbench.errors import JobSkipped


@dataclass(frozen=True)
class Device:
    type: str  # "cpu" or "cuda"
    index: int | None
    name: str
    capability: tuple[int, int] | None = None
    total_memory_gb: float | None = None

    @property
    def torch_device(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    @property
    def is_cuda(self) -> bool:
        return self.type == "cuda"


def cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(requested: str = "auto") -> Device:
    """`auto` takes the first CUDA GPU when there is one, else the CPU."""
    import torch

    requested = (requested or "auto").lower()
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return Device("cpu", None, cpu_model_name())
    if not requested.startswith(("cuda", "auto")):
        raise JobSkipped(f"unknown device '{requested}'; use auto, cpu or cuda[:N]")
    if not torch.cuda.is_available():
        raise JobSkipped(f"device '{requested}' asked for, but no CUDA GPU is visible to torch")
    index = int(requested.split(":", 1)[1]) if ":" in requested else 0
    props = torch.cuda.get_device_properties(index)
    return Device(
        "cuda",
        index,
        props.name,
        (props.major, props.minor),
        round(props.total_memory / 1e9, 2),
    )
