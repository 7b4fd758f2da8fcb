"""Where a result was measured: versions, device, CPU, git commit, host, and the SLURM job if any."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from quantbench.runtime.device import Device, cpu_model_name
from quantbench.runtime.slurm_job import slurm_job

PACKAGES = ("torch", "transformers", "bitsandbytes", "accelerate", "optimum", "gptqmodel", "hydra-core", "quantbench")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the quantbench checkout, when it runs from one."""
    source = Path(__file__).resolve().parents[2]
    try:
        output = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=5,
    )
    return output.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def capture_environment(device: Device | None) -> dict[str, Any]:
    import torch

    environment: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "git_commit": git_commit(),
        "versions": {name: package_version(name) for name in PACKAGES},
    }
    slurm = slurm_job()
    if slurm is not None:  # which SLURM job and node measured it (the summary's slurm_job_id, slurm_node)
        environment["slurm"] = slurm
    if device is not None:
        environment.update(
            device_type=device.type,
            device_name=device.name,
            device_capability=".".join(map(str, device.capability)) if device.capability else None,
            device_memory_gb=device.total_memory_gb,
        )
    return environment
