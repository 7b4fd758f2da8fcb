"""The load generator's timing: sends on time, and no pause of Python's garbage collector in a level.

Waiting for a scheduled send: asyncio's timers are only as fine as the selector's timeout (epoll
waits whole milliseconds, rounded up) and wake a timer among whatever else is ready, so
`asyncio.sleep(due - now)` sends up to a millisecond and more late. `until` sleeps to SPIN_S before
the time and spends the rest yielding to the event loop (`asyncio.sleep(0)`: the streams in flight
are still read) and checking the clock, so a request goes out within one loop iteration of its time.

The collector: a serving job's process holds the tokenizer, transformers and torch, half a million
objects, and a full collection of them stops the event loop for about 200 ms on a 2-core machine
(every stream in flight is then late, and so is every send). `level_gc` freezes what exists when a
level starts (never scanned again) and turns collection off for the level; the requests of a level
leave almost no cyclic garbage (133 objects for 371 requests, benchmarks/trace_replay.py), and it
is collected after the level. benchmarks/trace_replay.py measures both.
"""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import contextmanager
from typing import Iterator

SPIN_S = 0.002  # the selector's rounding (1 ms) and a timer's usual lateness, with room


async def until(due: float) -> None:
    """Return at perf_counter time `due` (at once if it has passed)."""
    early = due - time.perf_counter() - SPIN_S
    if early > 0:
        await asyncio.sleep(early)
    while time.perf_counter() < due:
        await asyncio.sleep(0)


@contextmanager
def level_gc() -> Iterator[None]:
    """No collector pause inside: the objects alive are frozen, collection off; both undone after."""
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
