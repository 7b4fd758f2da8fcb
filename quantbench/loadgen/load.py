"""Load levels: closed loop (N users) or open loop (Poisson arrivals at a rate), with warm-up.

Closed loop: each simulated user sends its next request when its previous one ends. Open loop:
requests are sent at seeded exponential gaps whatever the server's state, so a server slower than
the rate builds a queue, as under real traffic. A level stops sending after `requests` requests or
`duration_s` seconds (whichever comes first) and waits for the requests in flight, or, stopped
early (an over-saturated level: quantbench.loadgen.saturation), cancels them and records them as
cancelled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from quantbench.errors import QuantbenchError
from quantbench.loadgen.client import Exchange
from quantbench.loadgen.clock import SPIN_S, until

if TYPE_CHECKING:
    from quantbench.loadgen.prompts import LevelPrompts, Prompt

Send = Callable[["Prompt"], Awaitable[Exchange]]


CANCELLED = "cancelled: in flight when the level stopped early"


class ServeFailed(QuantbenchError):
    """The load could not be run (unreachable endpoint, every request of a level failed, a client
    process that died)."""


@dataclass(frozen=True)
class Level:
    index: int
    concurrency: int | None = None  # closed loop
    request_rate: float | None = None  # open loop, requests per second
    # Open loop on a given schedule: a replayed trace (serve.trace; quantbench.loadgen.trace).
    schedule: tuple[Arrival, ...] | None = field(default=None, repr=False, compare=False)
    profile: str = "levels"  # the serve.profile that chose it (quantbench.loadgen.profiles)
    role: str | None = None  # its part in the profile: synchronous, throughput, rate, probe; None: a plain level

    @property
    def kind(self) -> str:
        """Its role, or for a plain level its loop: trace, concurrency (closed) or rate (open)."""
        if self.role:
            return self.role
        if self.schedule is not None:
            return "trace"
        return "concurrency" if self.concurrency is not None else "rate"

    @property
    def label(self) -> str:
        if self.schedule is not None:
            return "trace"
        load = f"{self.concurrency} users" if self.concurrency is not None else f"{self.request_rate:g} req/s"
        return f"{load} ({self.role})" if self.role and self.role != "rate" else load


@dataclass
class LevelRun:
    level: Level
    started_at: float  # perf_counter seconds when the first measured request was sent
    finished_at: float  # when the last one ended
    exchanges: list[Exchange] = field(default_factory=list)
    warmup_failed: int = 0
    warmup_error: str | None = None
    prompts_repeated: bool = False  # more requests than the dataset has prompts
    stopped_early_reason: str | None = None  # over-saturated: why the level stopped before its budget
    client_processes: int = 1  # the processes that drove it (quantbench.loadgen.workers)

    @property
    def duration_s(self) -> float:
        return max(self.finished_at - self.started_at, 1e-9)


@dataclass(frozen=True)
class Arrival:
    """One open-loop request: its prompt and when it is due, in seconds after the level's start."""

    offset_s: float
    prompt: Prompt
    # A trace's conversation: when each later turn of the prompt is due (sent then, or when the
    # turn before it has ended if that is later); empty: each as soon as the turn before it ends.
    later_offsets_s: tuple[float, ...] = ()


class Budget:
    """When a level stops sending: after `requests` requests or `duration_s` seconds after `started`
    (a perf_counter time; default now), or once stopped early."""

    def __init__(self, requests: int | None, duration_s: float | None, started: float | None = None):
        self.requests, self.duration_s = requests, duration_s
        self.sent = 0
        self.started = time.perf_counter() if started is None else started
        self.stopped = False

    def take(self) -> bool:
        if self.stopped:
            return False
        if self.requests is not None and self.sent >= self.requests:
            return False
        if self.duration_s is not None and time.perf_counter() - self.started >= self.duration_s:
            return False
        self.sent += 1
        return True

    def reserve(self, count: int) -> int:
        """Up to `count` more requests for a conversation already started (its later turns): the
        request limit holds, the time limit does not cut a conversation short."""
        granted = count if self.requests is None else max(0, min(count, self.requests - self.sent))
        self.sent += granted
        return granted

    def release(self, count: int) -> None:
        """Requests reserved and not sent (a conversation that ended early)."""
        self.sent -= count


async def closed_loop(send: Send, prompts: Iterator[Prompt], users: int, budget: Budget) -> list[Exchange]:
    exchanges: list[Exchange] = []

    async def user() -> None:
        from quantbench.loadgen.conversation import converse

        while budget.take():  # a conversation's later turns follow its first (quantbench.loadgen.conversation)
            exchanges.extend(await converse(send, next(prompts), budget))

    await asyncio.gather(*(user() for _ in range(users)))
    return exchanges


def poisson_gaps_s(rate: float, seed: int, level: int) -> Iterator[float]:
    """Seeded exponential inter-arrival times of a Poisson process with `rate` per second."""
    import numpy as np

    rng = np.random.default_rng([seed, level])
    while True:
        yield float(rng.exponential(1.0 / rate))


def poisson_arrivals(rate: float, seed: int, level: int, prompts: Iterator[Prompt]) -> Iterator[Arrival]:
    """Seeded Poisson arrivals: each prompt's scheduled send, in seconds after the level's start."""
    offset_s = 0.0
    for gap_s, prompt in zip(poisson_gaps_s(rate, seed, level), prompts):
        offset_s += gap_s
        yield Arrival(offset_s, prompt)


def level_arrivals(level: Level, seed: int, chosen: LevelPrompts) -> Iterator[Arrival] | None:
    """An open-loop level's schedule: a trace's own, else seeded Poisson arrivals at its rate; None
    for a closed loop."""
    if level.schedule is not None:
        return iter(level.schedule)
    if level.request_rate is None:
        return None
    return poisson_arrivals(level.request_rate, seed, level.index, chosen.measured())


async def open_loop(
    send: Send,
    arrivals: Iterator[Arrival],
    budget: Budget,
    started: float | None = None,
    stop: asyncio.Event | None = None,
) -> list[Exchange]:
    """Each arrival sent at its scheduled time (after `started`, a perf_counter time shared by every
    client process; default now) whatever the server's state; `scheduled_at` records when it was
    due, so the send-time error (sent_at - scheduled_at) is measured, not assumed. `stop` ends the
    wait for the next arrival at once."""
    tasks: list[asyncio.Task] = []
    started = time.perf_counter() if started is None else started
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None

    async def sent(arrival: Arrival, due: float) -> list[Exchange]:
        from quantbench.loadgen.conversation import converse

        return await converse(send, arrival.prompt, budget, due, started, arrival.later_offsets_s)

    try:
        for arrival in arrivals:
            due = started + arrival.offset_s
            if stopped is not None and due > time.perf_counter():  # a stop ends the wait at once
                await asyncio.wait({stopped}, timeout=max(0.0, due - time.perf_counter() - SPIN_S))
            if stopped is None or not stopped.done():
                await until(due)  # asleep until just before, then yielding to the loop: on time to a loop iteration
            if not budget.take():
                break
            tasks.append(asyncio.ensure_future(sent(arrival, due)))
        return [exchange for exchanges in await asyncio.gather(*tasks) for exchange in exchanges]
    finally:
        if stopped is not None:
            stopped.cancel()
        for task in tasks:
            task.cancel()  # only those still running: an interrupted level leaves nothing behind


class Stopping:
    """Ends a level's measured phase early: no more sends (the budget refuses), and the requests in
    flight cancelled, each recorded as a cancelled exchange (`watched`)."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.event = asyncio.Event()
        self.in_flight: set[asyncio.Future] = set()
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        if self.event.is_set():
            return
        self.reason = reason
        self.budget.stopped = True
        self.event.set()
        for task in list(self.in_flight):
            task.cancel()


def watched(
    send: Send,
    stopping: Stopping,
    on_sent: Callable[[float], Any] | None = None,
    on_done: Callable[[Exchange], Any] | None = None,
) -> Send:
    """`send`, told to `on_sent` (its send time) and `on_done` (the finished exchange), and
    cancellable by `stopping`: a request it cancels returns as a cancelled exchange (not reported
    done). Any other cancellation (Ctrl-C) propagates."""

    async def one(prompt: Prompt) -> Exchange:
        sent_at = time.perf_counter()
        if on_sent is not None:
            on_sent(sent_at)
        task = asyncio.ensure_future(send(prompt))
        stopping.in_flight.add(task)
        try:
            exchange = await task
        except asyncio.CancelledError:
            if not (task.cancelled() and stopping.event.is_set()):
                raise
            return Exchange(
                prompt_id=prompt.id, sent_at=sent_at, finished_at=time.perf_counter(), error=CANCELLED, cancelled=True
            )
        finally:
            stopping.in_flight.discard(task)
        if on_done is not None:
            on_done(exchange)
        return exchange

    return one


async def warm_up(level: Level, send: Send, prompts: list[Prompt], users: int) -> tuple[int, str | None]:
    """The warm-up requests at `users` concurrency (open loop: one at a time); (failed, first error)."""
    warm = await closed_loop(send, iter(prompts), users, Budget(len(prompts), None))
    failed = [exchange for exchange in warm if exchange.error]
    return len(failed), failed[0].error if failed else None


async def measure(
    level: Level,
    send: Send,
    measured: Iterator[Prompt],
    arrivals: Iterator[Arrival] | None,
    budget: Budget,
    stopping: Stopping,
    users: int | None = None,
) -> list[Exchange]:
    """The level's measured requests, from `budget.started`: closed loop from `measured` with
    `users` (default the level's), open loop from `arrivals` (which carry their own prompts);
    `send` is already `watched` by `stopping`."""
    if level.concurrency is not None:
        return await closed_loop(send, measured, users or level.concurrency, budget)
    assert arrivals is not None
    return await open_loop(send, arrivals, budget, started=budget.started, stop=stopping.event)


def level_run(level: Level, exchanges: list[Exchange], started: float, **facts: Any) -> LevelRun:
    """The run of a level from its exchanges: from the first send to the last end, sorted by send time."""
    finished = max([started, *(exchange.finished_at or started for exchange in exchanges)])
    started = min([finished, *(exchange.sent_at for exchange in exchanges)])
    exchanges.sort(key=lambda exchange: exchange.sent_at)
    return LevelRun(level=level, started_at=started, finished_at=finished, exchanges=exchanges, **facts)


async def run_level(
    level: Level,
    send: Send,
    measured: Iterator[Prompt],
    warmup: list[Prompt],
    budget_of: Callable[[], Budget],
    arrivals: Iterator[Arrival] | None,
    tick: Callable[[int], Any] | None = None,
    watch: Any = None,
    on_measure: Callable[[], None] | None = None,
) -> LevelRun:
    """Warm up at the level's own concurrency (open loop: one at a time), then measure: closed loop
    from `measured`, open loop from `arrivals` (which carry their own prompts). `on_measure` runs
    between the two, when no request is in flight (the server's counters are read then). `watch` (a
    quantbench.loadgen.saturation.LevelWatch) is told every send and completion and checked while
    the level runs; when it finds the level over-saturated, the level stops early."""
    warmup_failed, warmup_error = await warm_up(level, send, warmup, level.concurrency or 1)
    if on_measure is not None:
        on_measure()
    budget = budget_of()
    stopping = Stopping(budget)

    def done(exchange: Exchange) -> None:
        if tick is not None:
            tick(1)
        if watch is not None:
            watch.on_done(exchange.sent_at, exchange.arrivals[0] if exchange.arrivals else None, exchange.finished_at)

    one = watched(send, stopping, watch.on_sent if watch is not None else None, done)
    monitor = asyncio.ensure_future(watch.monitor(stopping.stop)) if watch is not None else None
    try:
        exchanges = await measure(level, one, measured, arrivals, budget, stopping)
    finally:
        if monitor is not None:
            monitor.cancel()
    return level_run(
        level,
        exchanges,
        budget.started,
        warmup_failed=warmup_failed,
        warmup_error=warmup_error,
        stopped_early_reason=stopping.reason,
    )
