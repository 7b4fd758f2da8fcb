"""Load levels: closed loop (N users) or open loop (Poisson arrivals at a rate), with warm-up.

Closed loop: each simulated user sends its next request when its previous one ends. Open loop:
requests are sent at seeded exponential gaps whatever the server's state, so a server slower than
the rate builds a queue, as under real traffic. A level stops sending after `requests` requests or
`duration_s` seconds (whichever comes first) and waits for the requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from quantbench.loadgen.client import Exchange
from quantbench.loadgen.clock import until

if TYPE_CHECKING:
    from quantbench.loadgen.prompts import Prompt

Send = Callable[["Prompt"], Awaitable[Exchange]]


@dataclass(frozen=True)
class Level:
    index: int
    concurrency: int | None = None  # closed loop
    request_rate: float | None = None  # open loop, requests per second
    # Open loop on a given schedule: a replayed trace (serve.trace; quantbench.loadgen.trace).
    schedule: tuple[Arrival, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        if self.schedule is not None:
            return "trace"
        return f"{self.concurrency} users" if self.concurrency is not None else f"{self.request_rate:g} req/s"


@dataclass
class LevelRun:
    level: Level
    started_at: float  # perf_counter seconds when the first measured request was sent
    finished_at: float  # when the last one ended
    exchanges: list[Exchange] = field(default_factory=list)
    warmup_failed: int = 0
    warmup_error: str | None = None
    prompts_repeated: bool = False  # more requests than the dataset has prompts

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
    """When a level stops sending: after `requests` requests or `duration_s` seconds."""

    def __init__(self, requests: int | None, duration_s: float | None):
        self.requests, self.duration_s = requests, duration_s
        self.sent = 0
        self.started = time.perf_counter()

    def take(self) -> bool:
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


async def open_loop(send: Send, arrivals: Iterator[Arrival], budget: Budget) -> list[Exchange]:
    """Each arrival sent at its scheduled time whatever the server's state; `scheduled_at` records
    when it was due, so the send-time error (sent_at - scheduled_at) is measured, not assumed."""
    tasks: list[asyncio.Task] = []
    started = time.perf_counter()

    async def sent(arrival: Arrival, due: float) -> list[Exchange]:
        from quantbench.loadgen.conversation import converse

        return await converse(send, arrival.prompt, budget, due, started, arrival.later_offsets_s)

    try:
        for arrival in arrivals:
            due = started + arrival.offset_s
            await until(due)  # asleep until just before, then yielding to the loop: on time to a loop iteration
            if not budget.take():
                break
            tasks.append(asyncio.ensure_future(sent(arrival, due)))
        return [exchange for exchanges in await asyncio.gather(*tasks) for exchange in exchanges]
    finally:
        for task in tasks:
            task.cancel()  # only those still running: an interrupted level leaves nothing behind


async def run_level(
    level: Level,
    send: Send,
    measured: Iterator[Prompt],
    warmup: list[Prompt],
    budget_of: Callable[[], Budget],
    arrivals: Iterator[Arrival] | None,
    tick: Callable[[int], Any] | None = None,
) -> LevelRun:
    """Warm up at the level's own concurrency (open loop: one at a time), then measure: closed loop
    from `measured`, open loop from `arrivals` (which carry their own prompts)."""
    users = level.concurrency or 1
    warm = await closed_loop(send, iter(warmup), users, Budget(len(warmup), None))
    failed = [exchange for exchange in warm if exchange.error]

    def counted(prompt: Prompt) -> Awaitable[Exchange]:
        async def sent() -> Exchange:
            exchange = await send(prompt)
            if tick is not None:
                tick(1)
            return exchange

        return sent()

    budget = budget_of()
    started = time.perf_counter()
    if level.concurrency is not None:
        exchanges = await closed_loop(counted, measured, level.concurrency, budget)
    else:
        assert arrivals is not None
        exchanges = await open_loop(counted, arrivals, budget)
    finished = max([started, *(exchange.finished_at or started for exchange in exchanges)])
    started = min([finished, *(exchange.sent_at for exchange in exchanges)])
    exchanges.sort(key=lambda exchange: exchange.sent_at)
    return LevelRun(
        level=level,
        started_at=started,
        finished_at=finished,
        exchanges=exchanges,
        warmup_failed=len(failed),
        warmup_error=failed[0].error if failed else None,
    )
