"""What server engines share: the executable (`engine.command` or the engine's own), its check."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

DENSE_BACKENDS = ("fp32", "fp16", "bf16")
CHECKPOINT_BACKENDS = ("gptq", "awq")  # served from their cached quantized checkpoint (weights.py)


def configured_executable(engine: DictConfig) -> list[str] | None:
    """`engine.command` split like a shell would, or None when the engine's own is used."""
    command = engine.get("command")
    return shlex.split(str(command)) if command else None


def missing_executable_reason(command: list[str]) -> str | None:
    """Why the first word of `command` cannot be run, or None."""
    program = command[0]
    if Path(program).expanduser().is_file() or shutil.which(program):
        return None
    return f"engine.command '{program}' was not found (not a file, not on PATH); give the path of the executable"


def prefix_caching_flag(engine: DictConfig, on: str, off: str) -> tuple[list[str], str | None]:
    """The flag for engine.prefix_caching (none when null) and how it is recorded."""
    setting = engine.get("prefix_caching")
    if setting is None:
        return [], None
    return ([on], "on") if setting else ([off], "off")


def dtype_arguments(precision: DictConfig) -> list[str] | None:
    """`--dtype` (both servers' flag) for a dense precision, or a checkpoint with a dtype other than
    auto; [] for a checkpoint's own dtype; None for a backend that needs more than a dtype."""
    backend = str(precision.backend)
    if backend in DENSE_BACKENDS:
        return ["--dtype", str(precision.dtype)]
    if backend in CHECKPOINT_BACKENDS:
        dtype = str(precision.get("dtype", "auto"))
        return [] if dtype == "auto" else ["--dtype", dtype]
    return None


def precision_arguments(precision: DictConfig, quantization: dict[str, list[str]]) -> list[str]:
    """The server's arguments for a precision: its dtype, or the engine's `quantization` arguments
    for the backend (call only where the engine's unsupported_reason is None)."""
    dtypes = dtype_arguments(precision)
    if dtypes is not None:
        return dtypes
    return list(quantization[str(precision.backend)])
