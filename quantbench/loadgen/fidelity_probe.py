"""A served-fidelity run: the windows' scored tokens through the server, window after window.

At no load the run goes before the first level, one request at a time. Beside a level it runs in a
thread of its own (its own event loop and HTTP session, so the level's event loop is not touched),
started when the level's warm-up has ended (run_levels' on_measure) and told to stop when the
level's last request has ended: a request already sent then is kept (it was sent under load), none
is sent after. What share of the run's request time fell within the level's measured window (first
measured send to last end) is its `overlap`. A request the server refuses or fails ends the run with the server's words.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from quantbench.loadgen.fidelity_protocols import SCORE_WINDOW, Asking, FidelityRequestFailed, Scored, WindowTask

if TYPE_CHECKING:
    from quantbench.engines.openai import Endpoint


@dataclass
class ProbeRun:
    scored: list[Scored]  # per window task, as far as the run got
    started_at: float  # perf_counter seconds
    finished_at: float
    error: str | None = None

    @property
    def n_tokens(self) -> int:
        return sum(len(part.top_k) for part in self.scored)

    @property
    def n_requests(self) -> int:
        return sum(len(part.spans) for part in self.scored)

    def overlap(self, start: float, end: float) -> float | None:
        """Share of the run's request time within [start, end]; None without a request."""
        spans = [span for part in self.scored for span in part.spans]
        total = sum(finished - sent for sent, finished in spans)
        if not spans or total <= 0:
            return None
        inside = sum(max(0.0, min(finished, end) - max(sent, start)) for sent, finished in spans)
        return inside / total


@dataclass(frozen=True)
class Probe:
    """Everything a run needs: the windows, the server and how it is asked."""

    protocol: str
    tasks: list[WindowTask]
    endpoint: Endpoint
    top_k: int
    timeout_s: float
    token_of: Callable[[str], int | None] | None = None

    async def run(self, keep_going: Callable[[], bool]) -> ProbeRun:
        from quantbench.loadgen.client import new_session

        scored = [Scored() for _ in self.tasks]
        started = time.perf_counter()
        async with new_session(self.timeout_s) as session:
            asking = Asking(session, self.endpoint, self.top_k, self.timeout_s, keep_going, self.token_of)
            try:
                for task, part in zip(self.tasks, scored):
                    if not keep_going():
                        break
                    await SCORE_WINDOW[self.protocol](asking, task, part)
            except FidelityRequestFailed as error:
                return ProbeRun(scored, started, time.perf_counter(), str(error))
        return ProbeRun(scored, started, time.perf_counter())

    def run_once(self) -> ProbeRun:
        """The whole run, here and now (no load)."""
        return asyncio.run(self.run(lambda: True))


class ProbeBeside:
    """A run in a thread of its own, beside a load level: `start()`, then `stop()` returns it."""

    def __init__(self, probe: Probe):
        self.probe = probe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.result: ProbeRun | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="served-fidelity", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self.result = asyncio.run(self.probe.run(lambda: not self._stop.is_set()))
        except Exception as error:  # never the job's end: the level's own numbers stand
            scored = [Scored() for _ in self.probe.tasks]
            self.result = ProbeRun(scored, started, time.perf_counter(), f"{type(error).__name__}: {error}")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> ProbeRun | None:
        """Send no further request, wait for the one in flight (at most serve.request_timeout_s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return self.result
