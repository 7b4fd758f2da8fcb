"""The load of one serving job: its levels in turn against one endpoint, every run kept.

The job's profile (quantbench.loadgen.profiles) hands out each level, from the levels measured so
far. Each level: its prompts (quantbench.loadgen.prompts), warm-up, then the measured requests in
one event loop with one aiohttp session (quantbench.loadgen.load), or split over
serve.client_processes processes (quantbench.loadgen.workers); watched for over-saturation
(quantbench.loadgen.saturation) unless serve.stop_oversaturated is false. A level whose every
request failed (a search's probe excepted: it misses the SLO), or a server that died during it,
ends the job; the levels measured until then are kept.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from quantbench.loadgen.load import Level, LevelRun, ServeFailed, level_arrivals

__all__ = ["LoadPlan", "ServeFailed", "load_plan", "run_levels"]

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.profiles import Measured, Profile
    from quantbench.loadgen.prompts import LevelPrompts, Prompt
    from quantbench.loadgen.saturation import LevelWatch, SaturationSettings
    from quantbench.runtime.progress import JobProgress

log = logging.getLogger("quantbench")


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
    client_processes: int = 1
    saturation: SaturationSettings | None = None  # None: levels are never stopped early


def saturation_settings(serve: DictConfig) -> SaturationSettings | None:
    """serve.oversaturation when serve.stop_oversaturated is on; JobSkipped for thresholds that cannot work."""
    from omegaconf import OmegaConf

    from quantbench.errors import JobSkipped
    from quantbench.loadgen.saturation import SaturationSettings, settings_problem

    if not serve.stop_oversaturated:
        return None
    settings = SaturationSettings(**OmegaConf.to_container(serve.oversaturation, resolve=True))
    problem = settings_problem(settings)
    if problem:
        raise JobSkipped(problem)
    return settings


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
        client_processes=int(serve.client_processes),
        saturation=saturation_settings(serve),
    )


def run_levels(
    plan: LoadPlan,
    profile: Profile,
    prompts: list[Prompt],
    runs: list[LevelRun],
    progress: JobProgress,
    check: Callable[[bool], None] | None,
    summarise: Callable[[LevelRun], dict[str, Any]],
    on_level: Callable[[Level], None] | None = None,
    on_measure: Callable[[Level], None] | None = None,
) -> dict[str, Any]:
    """Each level the profile hands out, in turn, appending its run to `runs` as soon as it ends (so
    an error keeps them); `summarise` makes a level's summary row, which the profile decides the next
    level from; `on_level` is told each level as it starts (telemetry labels its samples with it),
    `on_measure` when its warm-up is over and its measured requests are about to go (the server's
    counters are read then, and the served fidelity's run beside a level starts).
    Returns the job-level facts of the load (the profile's answer, the client processes)."""
    from quantbench.loadgen.profiles import Measured
    from quantbench.loadgen.workers import client_pool

    done: list[Measured] = []
    with client_pool(plan) as pool:
        while (level := profile.next_level(done)) is not None:
            if on_level is not None:
                on_level(level)
            run = drive(plan, level, prompts, progress, pool, on_measure)
            runs.append(run)
            failed = [exchange for exchange in run.exchanges if exchange.error and not exchange.cancelled]
            if check is not None:
                check(bool(failed))  # a server that died during the level fails the job, quoting its log
            if not run.exchanges:
                raise ServeFailed(f"level {level.label} sent no request within serve.duration_s={plan.duration_s:g}")
            if len(failed) == len(run.exchanges) and level.role != "probe":
                raise ServeFailed(f"every request of level {level.label} failed: {failed[0].error}")
            done.append(Measured(run, summarise(run)))
            if run.stopped_early_reason:
                log.warning(
                    "level %s stopped early after %d requests: %s",
                    level.label,
                    len(run.exchanges),
                    run.stopped_early_reason,
                )
        facts = profile.facts(done)
        if pool is not None:
            facts |= pool.facts()
    if facts.get("slo_search_reason"):
        log.info("slo-search: %s", facts["slo_search_reason"])
    return facts


def drive(
    plan: LoadPlan,
    level: Level,
    prompts: list[Prompt],
    progress: JobProgress,
    pool: Any,
    on_measure: Callable[[Level], None] | None = None,
) -> LevelRun:
    """One level: in this process, or split over the client processes of `pool`."""
    from quantbench.loadgen.clock import level_gc
    from quantbench.loadgen.prompts import LevelPrompts
    from quantbench.loadgen.saturation import LevelWatch

    chosen = LevelPrompts(prompts, plan.seed, level.index)
    # At least one warm-up request per user, so every connection and batch slot is warm.
    warmup = max(plan.warmup_requests, level.concurrency or 1) if plan.warmup_requests > 0 else 0
    planned = plan.requests_per_level or 0
    if level.schedule is not None:  # a trace sends all of its requests
        planned = sum(1 + len(arrival.prompt.turns) for arrival in level.schedule)
    done = [0]

    def tick(count: int) -> None:
        done[0] += count
        progress.tick(f"serve {level.label}", done[0], max(planned, done[0]))

    # The level starts now (its warm-up first): the progress line names it, not the level before.
    progress.tick(f"serve {level.label}", 0, planned)

    watch = LevelWatch(plan.saturation, open_loop=level.concurrency is None) if plan.saturation is not None else None
    limit = f"{planned} requests" if planned else f"{plan.duration_s:g} s"
    log.info("level %s: %d warm-up requests, then %s", level.label, warmup, limit)
    measure = None if on_measure is None else (lambda: on_measure(level))
    if pool is not None:
        return pool.run_level(plan, level, chosen, warmup, tick, watch, measure)
    with level_gc():  # no collector pause inside the level (quantbench.loadgen.clock)
        run = asyncio.run(drive_level(plan, level, chosen, warmup, tick, watch, measure))
    run.prompts_repeated = chosen.repeated
    return run


async def drive_level(
    plan: LoadPlan,
    level: Level,
    chosen: LevelPrompts,
    warmup: int,
    tick,
    watch: LevelWatch | None = None,
    on_measure: Callable[[], None] | None = None,
) -> LevelRun:
    from quantbench.loadgen.client import new_session, send
    from quantbench.loadgen.load import Budget, run_level

    async with new_session(plan.timeout_s) as session:

        async def one(prompt: Prompt):
            return await send(session, plan.endpoint, prompt, plan.max_tokens, plan.options, plan.timeout_s)

        arrivals = level_arrivals(level, plan.seed, chosen)
        # A trace (serve.trace) replays its own schedule, all of it: serve.requests_per_level does not apply.
        requests = None if level.schedule is not None else plan.requests_per_level
        return await run_level(
            level,
            one,
            chosen.measured(),
            chosen.warmup(warmup),
            lambda: Budget(requests, plan.duration_s),
            arrivals,
            tick,
            watch,
            on_measure,
        )
