"""gptqmodel's process environment: its CPU worker count, its log level, its kernel compilation.

Only the chosen backend imports this module's `import_gptqmodel`; listing backends never imports
gptqmodel (a few seconds and a banner).
"""

from __future__ import annotations

import logging
import os
from importlib import metadata
from pathlib import Path

from quantbench.errors import JobSkipped

log = logging.getLogger("quantbench")


def engine_version() -> str:
    return metadata.version("gptqmodel")


def cpu_workers_default() -> int:
    """gptqmodel's own default, but never below 2: its model-loader pool takes 2 CPU workers and
    refuses to start when the CPU pool has fewer (its default is 1 on a 2-core machine)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(12, (cores + 1) // 2))


def gptqmodel_environment() -> dict[str, str]:
    """Variables gptqmodel reads when its thread pool starts; set before its first import."""
    workers = os.environ.get("GPTQMODEL_CPU_WORKERS") or str(cpu_workers_default())
    if not workers.isdigit() or int(workers) < 2:
        raise JobSkipped(
            f"GPTQMODEL_CPU_WORKERS={workers} is too few: gptqmodel's model loader needs 2 CPU workers; "
            "set it to 2 or more, or unset it"
        )
    env = {"GPTQMODEL_CPU_WORKERS": workers}
    os.environ.update(env)
    return env


def import_gptqmodel():
    """Import gptqmodel with our environment, its INFO chatter off (its warnings stay)."""
    gptqmodel_environment()
    import gptqmodel

    logging.getLogger("logbar").setLevel(logging.WARNING)
    return gptqmodel


def extensions_compiled() -> bool:
    """Whether gptqmodel has compiled C++ kernels on this machine before (its build cache)."""
    override = os.environ.get("GPTQMODEL_TORCH_EXTENSIONS_DIR")
    root = Path(override).expanduser() if override else Path.home() / ".cache" / "gptqmodel" / "torch_extensions"
    return root.is_dir() and any(root.glob("*/*/*.so"))


def announce_compilation() -> None:
    if not extensions_compiled():
        log.info("gptqmodel compiles its C++ kernels on first use on this machine: about a minute, once")
