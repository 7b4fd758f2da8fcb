"""serve.client_processes=N: a level's load driven by N client processes that share one schedule.

One process's event loop streams about 12,800 chunks/s before its own delays show in the ITL it
measures (docs/results/client_overhead.md); a server that emits more needs more client processes.

- The processes start once per job, with multiprocessing's `spawn`: a fresh interpreter each (the
  job's process holds threads, torch's and the telemetry sampler's, which `fork` would copy in
  whatever state they are in); each opens its own aiohttp session per level.
- Per level the job's process splits the load: a closed loop's users and request budget as evenly
  as whole numbers allow (the processes that get users take every N-th place of the level's prompt
  order), an open loop's arrivals (the one seeded schedule) round-robin; serve.duration_s is shared.
- Each process warms up its share and says so; then the job's process names one start time, a
  `time.perf_counter()` value, which every process waits for. On Linux perf_counter is
  CLOCK_MONOTONIC, one clock for the whole machine; the pool checks it at start (each process's
  reading must fall between the job's process's readings before and after it).
- While the level runs each process reports every send and every completion: the job's process
  ticks the progress, runs the over-saturation test on the whole level and, when it trips, tells
  every process to stop. The exchanges are merged into one LevelRun, in send order.
- A process that dies fails the level (ServeFailed naming it and how it ended). Leaving the pool (at
  the job's end, on an error, on Ctrl-C) stops every process: asked, then terminated, then killed;
  each also dies with the job's process (PR_SET_PDEATHSIG) and ignores SIGINT (a terminal's Ctrl-C
  reaches the job's process, which stops them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from quantbench.loadgen.load import Arrival, Level, LevelRun, ServeFailed, level_arrivals

# A job's LoadPlan (quantbench.loadgen.driver, which imports this module: not imported back) is `plan`.
LoadPlan = Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from quantbench.loadgen.prompts import LevelPrompts, Prompt
    from quantbench.loadgen.saturation import LevelWatch

log = logging.getLogger("quantbench")

START_METHOD = "spawn"
START_TIMEOUT_S = 120.0  # a fresh interpreter importing aiohttp and numpy on a busy 2-core machine
START_MARGIN_S = 0.05  # from naming the start time to reaching it: every process has its message by then
STOP_TIMEOUT_S = 5.0  # for a process to leave when asked, before it is terminated
POLL_S = 0.1  # the longest the job's process waits for a message before checking the level again


def split(count: int, parts: int) -> list[int]:
    """`count` in `parts` whole shares that differ by at most one, the larger first."""
    return [count // parts + (index < count % parts) for index in range(parts)]


@dataclass
class Share:
    """One process's part of a level."""

    level: Level
    plan: LoadPlan
    warmup: list[Prompt]
    users: int | None = None  # closed loop: this process's users (0: it sits the level out)
    requests: int | None = None  # closed loop: its part of serve.requests_per_level
    prompts: list[Prompt] | None = None  # closed loop: the job's prompts, taken as LevelPrompts(first, every)
    first: int = 0
    every: int = 1
    arrivals: list[Arrival] | None = None  # open loop: its part of the level's schedule


def scheduled(arrivals: Iterator[Arrival], requests: int | None, duration_s: float | None) -> list[Arrival]:
    """The arrivals a level sends: the first `requests`, those due within `duration_s`."""
    kept: list[Arrival] = []
    for arrival in arrivals:
        if requests is not None and len(kept) >= requests:
            break
        if duration_s is not None and arrival.offset_s >= duration_s:
            break
        kept.append(arrival)
    return kept


def shares(plan: LoadPlan, level: Level, chosen: LevelPrompts, warmup: int, processes: int) -> list[Share]:
    """The level split over `processes`, as the module's docstring says."""
    warm = chosen.warmup(warmup)
    if level.concurrency is not None:
        active = min(processes, level.concurrency)
        users = split(level.concurrency, active) + [0] * (processes - active)
        requests = (
            split(plan.requests_per_level, active) + [0] * (processes - active)
            if plan.requests_per_level is not None
            else [None] * processes
        )
        return [
            Share(
                level,
                plan,
                warm[index::active] if index < active else [],
                users=users[index],
                requests=requests[index],
                prompts=chosen.prompts,
                first=index,
                every=active,
            )
            for index in range(processes)
        ]
    # A trace (serve.trace) replays all of its schedule: serve.requests_per_level does not apply.
    requests = None if level.schedule is not None else plan.requests_per_level
    arrivals = scheduled(level_arrivals(level, plan.seed, chosen), requests, plan.duration_s)
    # Open loop: warm-up one at a time in each process, at least one each (its own connection).
    return [
        Share(level, plan, warm[index::processes] or warm[:1], arrivals=arrivals[index::processes])
        for index in range(processes)
    ]


def describe_exit(code: int | None) -> str:
    if code is None:
        return "closed its pipe"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class ClientPool:
    """N client processes for one job; `run_level` drives a level with them, `close` stops them."""

    def __init__(self, processes: int):
        import multiprocessing

        context = multiprocessing.get_context(START_METHOD)
        self.processes: list[Any] = []
        self.connections: list[Connection] = []
        started = time.perf_counter()
        try:
            for index in range(processes):
                mine, theirs = context.Pipe()
                process = context.Process(
                    target=worker_main, args=(theirs, os.getpid()), name=f"quantbench-client-{index}", daemon=True
                )
                process.start()
                theirs.close()
                self.processes.append(process)
                self.connections.append(mine)
            for index in range(processes):
                _kind, clock = self._receive(index, "ready", "while starting", START_TIMEOUT_S)
                if not started <= clock <= time.perf_counter():
                    raise ServeFailed(
                        f"client process {index}'s perf_counter ({clock:.6f}) is not this process's clock: "
                        "serve.client_processes needs one clock for the machine (CLOCK_MONOTONIC on Linux); use 1"
                    )
        except BaseException:
            self.close()
            raise
        self.start_s = time.perf_counter() - started
        log.info("%d client processes started in %.2f s", processes, self.start_s)

    def facts(self) -> dict[str, Any]:
        return {
            "client_processes_start_s": self.start_s,
            "client_clock": f"perf_counter, {time.get_clock_info('perf_counter').implementation}, one per machine",
        }

    def _fail(self, index: int, when: str) -> None:
        process = self.processes[index]
        process.join(timeout=1.0)
        raise ServeFailed(f"client process {index} (pid {process.pid}) {describe_exit(process.exitcode)} {when}")

    def _receive(self, index: int, kind: str, when: str, timeout_s: float | None) -> Any:
        """The next message of process `index`, which must be of `kind`."""
        from multiprocessing.connection import wait

        connection, process = self.connections[index], self.processes[index]
        if not wait([connection, process.sentinel], timeout_s):
            raise ServeFailed(f"client process {index} (pid {process.pid}) did not answer within {timeout_s} s {when}")
        try:
            message = connection.recv()
        except (EOFError, OSError):
            self._fail(index, when)
        if message[0] == "error":
            raise ServeFailed(f"client process {index} failed {when}: {message[1]}")
        if message[0] != kind:
            raise ServeFailed(f"client process {index} sent {message[0]!r} {when}, expected {kind!r}")
        return message

    def _broadcast(self, message: tuple) -> None:
        for connection in self.connections:
            connection.send(message)

    def run_level(
        self,
        plan: LoadPlan,
        level: Level,
        chosen: LevelPrompts,
        warmup: int,
        tick: Callable[[int], Any],
        watch: LevelWatch | None,
        on_measure: Callable[[], None] | None = None,
    ) -> LevelRun:
        from multiprocessing.connection import wait

        from quantbench.loadgen.load import level_run

        when = f"during level {level.label}"
        for connection, share in zip(self.connections, shares(plan, level, chosen, warmup, len(self.processes))):
            connection.send(("level", share))
        warm = [self._receive(index, "warm", when, None) for index in range(len(self.processes))]
        if on_measure is not None:
            on_measure()  # every process has warmed up and none has sent a measured request yet
        start_at = time.perf_counter() + START_MARGIN_S
        self._broadcast(("go", start_at))
        results: dict[int, tuple] = {}
        stop_reason: str | None = None
        next_check = start_at + (watch.settings.check_interval_s if watch is not None else 0.0)
        by_object = {connection: index for index, connection in enumerate(self.connections)}
        by_object |= {process.sentinel: index for index, process in enumerate(self.processes)}
        while len(results) < len(self.processes):
            for ready in wait([item for item, index in by_object.items() if index not in results], POLL_S):
                index = by_object[ready]
                if ready is not self.connections[index]:
                    self._fail(index, when)  # its process ended before its share did
                try:
                    message = ready.recv()
                except (EOFError, OSError):
                    self._fail(index, when)
                if message[0] == "sent":
                    if watch is not None:
                        watch.on_sent(message[1])
                elif message[0] == "done":
                    tick(1)
                    if watch is not None:
                        watch.on_done(*message[1])
                elif message[0] == "result":
                    results[index] = message
                elif message[0] == "error":
                    raise ServeFailed(f"client process {index} failed {when}: {message[1]}")
            now = time.perf_counter()
            if watch is not None and stop_reason is None and now >= next_check:
                next_check = now + watch.settings.check_interval_s
                stop_reason = watch.check(now)
                if stop_reason:
                    self._broadcast(("stop", stop_reason))
        exchanges = [exchange for index in sorted(results) for exchange in results[index][1]]
        failed = [message for message in warm if message[1]]
        return level_run(
            level,
            exchanges,
            start_at,
            warmup_failed=sum(message[1] for message in warm),
            warmup_error=failed[0][2] if failed else None,
            # An open loop's prompts were drawn here, for the schedule; a closed loop's by each process.
            prompts_repeated=chosen.repeated if level.concurrency is None else any(m[2] for m in results.values()),
            stopped_early_reason=stop_reason,
            client_processes=len(self.processes),
        )

    def close(self) -> None:
        """Stop every process: asked to leave, then terminated, then killed; idempotent."""
        for connection in self.connections:
            with contextlib.suppress(OSError, ValueError):
                connection.send(("exit",))
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=STOP_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join()
        for connection in self.connections:
            connection.close()
        self.processes, self.connections = [], []


@contextlib.contextmanager
def client_pool(plan: LoadPlan):
    """The job's client processes (None: the levels run in this process, serve.client_processes=1)."""
    if plan.client_processes <= 1:
        yield None
        return
    pool = ClientPool(plan.client_processes)
    try:
        yield pool
    finally:
        pool.close()


# The client process's side.


def worker_main(connection: Connection, parent_pid: int) -> None:
    """A client process: levels as the job's process sends them, until told to leave or orphaned."""
    from quantbench.runtime.processes import die_with_parent

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the job's process stops it
    try:
        connection.send(("ready", time.perf_counter()))
        asyncio.run(_serve(connection))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the job's process is gone


async def _serve(connection: Connection) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(connection.recv())
        except (EOFError, OSError):
            loop.remove_reader(connection.fileno())
            inbox.put_nowait(("exit",))

    loop.add_reader(connection.fileno(), readable)
    while True:
        message = await inbox.get()
        if message[0] == "exit":
            return
        if message[0] == "level":
            try:
                await _level(connection, inbox, message[1])
            except Exception as error:  # a bug here: the job's process fails the level with it
                connection.send(("error", f"{type(error).__name__}: {error}"))
        # a "stop" that came after this process's share had ended is stale: nothing to stop


async def _level(connection: Connection, inbox: asyncio.Queue, share: Share) -> None:
    from quantbench.loadgen.client import Exchange, new_session, send
    from quantbench.loadgen.load import Budget, Stopping, measure, warm_up, watched
    from quantbench.loadgen.prompts import LevelPrompts

    plan, level = share.plan, share.level
    async with new_session(plan.timeout_s) as session:

        async def one(prompt: Prompt) -> Exchange:
            return await send(session, plan.endpoint, prompt, plan.max_tokens, plan.options, plan.timeout_s)

        failed, error = await warm_up(level, one, share.warmup, share.users or 1)
        connection.send(("warm", failed, error))
        while (message := await inbox.get())[0] != "go":
            if message[0] == "exit":
                raise EOFError
        budget = Budget(share.requests, plan.duration_s, started=message[1])
        stopping = Stopping(budget)
        leaving: list[bool] = []

        async def listen() -> None:
            while True:
                message = await inbox.get()
                if message[0] == "stop":
                    stopping.stop(message[1])
                elif message[0] == "exit":  # the job's process is leaving (an error, Ctrl-C): stop, then leave
                    leaving.append(True)
                    stopping.stop("the job is ending")
                    inbox.put_nowait(message)
                    return

        def done(exchange: Exchange) -> None:
            first = exchange.arrivals[0] if exchange.arrivals else None
            connection.send(("done", (exchange.sent_at, first, exchange.finished_at)))

        listener = asyncio.ensure_future(listen())
        prompts = (
            LevelPrompts(share.prompts, plan.seed, level.index, share.first, share.every) if share.prompts else None
        )
        try:
            await asyncio.sleep(max(0.0, budget.started - time.perf_counter()))
            exchanges: list[Exchange] = []
            if share.users != 0 and (share.arrivals is None or share.arrivals):
                exchanges = await measure(
                    level,
                    watched(one, stopping, lambda at: connection.send(("sent", at)), done),
                    prompts.measured() if prompts is not None else iter(()),
                    iter(share.arrivals) if share.arrivals is not None else None,
                    budget,
                    stopping,
                    users=share.users,
                )
        finally:
            listener.cancel()
        if not leaving:  # nobody reads a result once the job's process is leaving
            connection.send(("result", exchanges, prompts.repeated if prompts is not None else False))
