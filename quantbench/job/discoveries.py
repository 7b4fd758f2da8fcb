"""What a job discovers once per process, made once for a whole sweep by its warm worker.

Every job looks up its plugins (the entry points of quantbench.config.registry) and reads the
hardware options' table (quantbench.measure.hardware_facts.hardware_options): a few tenths of a
second on a 2-core machine, the same answer for every job of a sweep. The warm worker
(quantbench.sweep.fork_server) discovers them before it forks any job, so each forked job starts
with them, and stamps the import path they were found on. A job whose import path differs from
the worker's, or one of whose path directories changed since (a package installed or removed
during the sweep), forgets them and discovers them again itself, as a fresh interpreter would.
"""

from __future__ import annotations

import os
import sys

_stamp: tuple[tuple[str, int], ...] | None = None  # the import path the discoveries were made on


def _path_stamp() -> tuple[tuple[str, int], ...]:
    """sys.path with each directory's modification time (an install adds a .dist-info directory)."""
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamp.append((entry, -1))
    return tuple(stamp)


def discover() -> None:
    """Discover the plugins and read the hardware table now (in the warm worker, before forking)."""
    global _stamp
    from quantbench.config.registry import backends, datasets, engines, families
    from quantbench.measure.hardware_facts import hardware_options

    for group in (backends, families, datasets, engines):
        group()
    hardware_options()
    _stamp = _path_stamp()


def forget_if_stale() -> None:
    """In a job, once its import path is final: keep the worker's discoveries only if they were
    made on this same import path, unchanged since."""
    global _stamp
    if _stamp is None or _path_stamp() == _stamp:
        return
    from quantbench.config.registry import clear_cache
    from quantbench.measure.hardware_facts import hardware_options

    clear_cache()
    hardware_options.cache_clear()
    _stamp = None
