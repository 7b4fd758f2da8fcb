"""How many CPU threads a job's engine uses: `hardware.threads`, else the cores this process may use.

Set, not only recorded, for torch and llama.cpp alike, so engines compare at equal threads.
"""

from __future__ import annotations

import os
from typing import Any


def job_threads(hardware: Any) -> int:
    configured = hardware.get("threads") if hasattr(hardware, "get") else getattr(hardware, "threads", None)
    if configured is not None:
        if int(configured) < 1:
            raise ValueError(
                f"hardware.threads is {configured}; expected at least 1, or null for the cores this process may use"
            )
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))  # the cores a container or taskset leaves this process
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def set_torch_threads(hardware: Any) -> int:
    """Set torch's intra-op threads to `job_threads(hardware)` and return that count. Every job sets
    it, so one job's setting never carries over to the next one run in the same process."""
    import torch

    threads = job_threads(hardware)
    torch.set_num_threads(threads)
    return threads
