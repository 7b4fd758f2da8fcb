"""The load of one serving job: its levels in turn against one endpoint, every run kept.

Each level: its prompts (quantbench.loadgen.prompts), warm-up, then the measured requests in one
event loop with one aiohttp session (quantbench.loadgen.load). A level whose every request failed,
or a server that died during it, ends the job; the levels measured until then are kept.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from quantbench.errors import QuantbenchError
from quantbench.loadgen.load import Level, LevelRun

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.prompts import LevelPrompts, Prompt
    from quantbench.runtime.progress import JobProgress

log = logging.getLogger("quantbench")


class ServeFailed(QuantbenchError):
    """The load could not be run (unreachable endpoint, every request of a level failed)."""


@dataclass(frozen=True)
class LoadPlan:
    """What every request of the job shares."""

    endpoint: Endpoint
    options: dict[str, Any]  # the engine's request fields (e.g. ignore the end of sequence)
    max_tokens: int
    timeout_s: float
    seed: int
    requests_per_level: int | None
    duration_s: float | None
    warmup_requests: int


def load_plan(cfg: DictConfig, endpoint: Endpoint, options: dict[str, Any]) -> LoadPlan:
    serve = cfg.serve
    return LoadPlan(
        endpoint=endpoint,
        options=options,
        max_tokens=int(cfg.bench.max_new_tokens),
        timeout_s=float(serve.request_timeout_s),
        seed=int(cfg.bench.seed),
        requests_per_level=None if serve.requests_per_level is None else int(serve.requests_per_level),
        duration_s=None if serve.duration_s is None else float(serve.duration_s),
        warmup_requests=int(serve.warmup_requests),
    )


def run_levels(
    plan: LoadPlan,
    levels: list[Level],
    prompts: list[Prompt],
    runs: list[LevelRun],
    progress: JobProgress,
    check: Callable[[], None] | None,
    on_level: Callable[[Level], None] | None = None,
) -> None:
    """Each level in turn, appending its run to `runs` as soon as it ends (so an error keeps them);
    `on_level` is told each level as it starts (telemetry labels its samples with it)."""
    from quantbench.loadgen.clock import level_gc
    from quantbench.loadgen.prompts import LevelPrompts

    for level in levels:
        if on_level is not None:
            on_level(level)
        chosen = LevelPrompts(prompts, plan.seed, level.index)
        # At least one warm-up request per user, so every connection and batch slot is warm.
        warmup = max(plan.warmup_requests, level.concurrency or 1) if plan.warmup_requests > 0 else 0
        planned = plan.requests_per_level or 0
        if level.schedule is not None:  # a trace sends all of its requests
            planned = sum(1 + len(arrival.prompt.turns) for arrival in level.schedule)
        done = [0]

        # done and planned bound as defaults: each level's own, even though the level ends in this iteration
        def tick(
            count: int, phase: str = f"serve {level.label}", done: list[int] = done, planned: int = planned
        ) -> None:
            done[0] += count
            progress.tick(phase, done[0], max(planned, done[0]))

        limit = f"{planned} requests" if planned else f"{plan.duration_s:g} s"
        log.info("level %s: %d warm-up requests, then %s", level.label, warmup, limit)
        with level_gc():  # no collector pause inside the level (quantbench.loadgen.clock)
            run = asyncio.run(drive_level(plan, level, chosen, warmup, tick))
        run.prompts_repeated = chosen.repeated
        runs.append(run)
        if check is not None:
            check()  # a server that died during the level fails the job, quoting its log
        if not run.exchanges:
            raise ServeFailed(f"level {level.label} sent no request within serve.duration_s={plan.duration_s:g}")
        if all(exchange.error for exchange in run.exchanges):
            raise ServeFailed(f"every request of level {level.label} failed: {run.exchanges[0].error}")


async def drive_level(plan: LoadPlan, level: Level, chosen: LevelPrompts, warmup: int, tick) -> LevelRun:
    from quantbench.loadgen.client import new_session, send
    from quantbench.loadgen.load import Budget, poisson_arrivals, run_level

    async with new_session(plan.timeout_s) as session:

        async def one(prompt: Prompt):
            return await send(session, plan.endpoint, prompt, plan.max_tokens, plan.options, plan.timeout_s)

        measured = chosen.measured()
        arrivals = (
            poisson_arrivals(level.request_rate, plan.seed, level.index, measured)
            if level.request_rate is not None
            else None
        )
        # A trace (serve.trace) replays its own schedule, all of it: serve.requests_per_level does not apply.
        requests = plan.requests_per_level
        if level.schedule is not None:
            arrivals, requests = iter(level.schedule), None
        return await run_level(
            level,
            one,
            measured,
            chosen.warmup(warmup),
            lambda: Budget(requests, plan.duration_s),
            arrivals,
            tick,
        )
