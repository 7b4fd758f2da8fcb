"""A conversation's turns, sent in order by one user, each carrying the whole history.

A prompt without later turns is one request. A conversation (a prompt with `turns`) sends its first
turn, then each later turn once the turn before it has ended, with the history as it happened: every
earlier user text and the assistant's reply as received (quantbench.loadgen.rendering puts them in
the request). In a closed loop the user who took the conversation runs all of it; in an open loop
it starts at its arrival, and a later turn is due when the turn before it ends (a trace may give it
a later time: it waits for that). A turn that fails ends its conversation (the next one would need
its reply); the turns left are not sent and not counted.

The level's request budget counts every turn: a conversation reserves its later turns when it
starts, so one that starts near the limit is cut to the requests left; the time limit
(serve.duration_s) does not cut a conversation already started.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

from quantbench.loadgen.clock import until

if TYPE_CHECKING:
    from quantbench.loadgen.client import Exchange
    from quantbench.loadgen.prompts import Prompt

# What converse needs of quantbench.loadgen.load (which calls it): its request function and budget,
# as protocols, so that load is not imported back.
Send = Callable[["Prompt"], Awaitable["Exchange"]]


class Budget(Protocol):
    def reserve(self, count: int) -> int: ...

    def release(self, count: int) -> None: ...


async def converse(
    send: Send,
    prompt: Prompt,
    budget: Budget,
    due: float | None = None,
    level_started: float | None = None,
    later_offsets_s: tuple[float, ...] = (),
) -> list[Exchange]:
    """The exchanges of `prompt` and its later turns. `due` (open loop): when the first turn was
    scheduled, recorded as its `scheduled_at`; later turns then record when each became due."""
    granted = budget.reserve(len(prompt.turns)) if prompt.turns else 0
    exchange = await send(prompt)
    exchange.scheduled_at = due
    exchanges = [exchange]
    sent, history = prompt, ()
    for index, turn in enumerate(prompt.turns[:granted]):
        if exchange.error is not None:
            budget.release(granted - index)
            break
        history = (*history, ("user", sent.text), ("assistant", exchange.text))
        turn_due = None
        if due is not None:
            turn_due = exchange.finished_at or time.perf_counter()
            if index < len(later_offsets_s) and level_started is not None:
                turn_due = max(turn_due, level_started + later_offsets_s[index])
                await until(turn_due)
        sent = replace(turn, history=history)
        exchange = await send(sent)
        exchange.scheduled_at = turn_due
        exchange.history = history
        exchanges.append(exchange)
    return exchanges
