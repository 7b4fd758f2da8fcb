"""Over-saturation: a level whose queue keeps growing is stopped early, not run to its end.

Above what a server serves, an open-loop level builds a queue without bound: each request waits
longer than the one before it, so TTFT rises through the level, and the requests in flight grow at
the arrival rate less the service rate. Running such a level to its end measures only the queue,
and can take minutes; a sweep or a search needs to know that it is over-saturated, and move on.

The test looks at the requests sent after the level's first completion (until then, in any level,
TTFT and the requests in flight rise from an idle server to their steady state) and asks, of each
signal, three things:
- a rise that is there: Kendall's rank correlation of the signal with send time, one-sided p below
  `alpha` (a monotone trend; robust to outliers, no straight line assumed);
- a rise that dominates: Kendall's τ at least `min_tau`. A stable queue's waits come in busy
  periods, which a significance test alone (it assumes independent points, and runs every
  check) takes for trends: in simulated single-server queues at 80 % load, p alone tripped 15 of
  20 levels of 300 requests, with τ ≥ 0.7 as well 2 of 40; at 110 % load 35 of 40 tripped within
  about 70 requests (at 90 %, a queue that has not settled within the level, 11 of 40);
- a rise that matters: the median of the last third of the window at least (1 + growth) times the
  median of its first third.
The signals: each completed request's TTFT (`ttft_growth`), and, in an open loop only (a closed
loop holds its users' count), the requests in flight at each send (`in_flight_growth`). Either one
trips it, once `min_requests` requests are in the window and `min_duration_s` seconds have passed;
it is checked every `check_interval_s` while the level runs. GuideLLM's over-saturation constraint
watches the same two signals (a regression slope with its margin of error, both required).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

MAX_WINDOW = 2000  # the most recent requests a check looks at: bounds its cost in a long level


@dataclass(frozen=True)
class SaturationSettings:
    """serve.oversaturation (quantbench.config.schema.serve.OversaturationConfig)."""

    min_requests: int = 20
    min_duration_s: float = 5.0
    alpha: float = 1e-3
    min_tau: float = 0.7
    ttft_growth: float = 1.0
    in_flight_growth: float = 1.0
    check_interval_s: float = 0.5


def settings_problem(settings: SaturationSettings) -> str | None:
    """Why these thresholds cannot work, in one line; None when they can."""
    if settings.min_requests < 3:
        return f"serve.oversaturation.min_requests must be at least 3 (a trend needs 3), got {settings.min_requests}"
    if not 0 < settings.alpha < 1:
        return f"serve.oversaturation.alpha must be between 0 and 1 (a p-value), got {settings.alpha}"
    if not 0 < settings.min_tau <= 1:
        return f"serve.oversaturation.min_tau must be in (0, 1] (Kendall's τ), got {settings.min_tau}"
    if settings.ttft_growth < 0 or settings.in_flight_growth < 0:
        return (
            "serve.oversaturation.ttft_growth and in_flight_growth must be at least 0 (the rise, in multiples of "
            f"the window's start), got {settings.ttft_growth} and {settings.in_flight_growth}"
        )
    if settings.check_interval_s <= 0 or settings.min_duration_s < 0:
        return "serve.oversaturation.check_interval_s must be positive and min_duration_s at least 0"
    return None


def rising(
    times: np.ndarray, values: np.ndarray, growth: float, settings: SaturationSettings
) -> tuple[float, float, float, float] | None:
    """(median of the first third, of the last third, τ, p-value) when `values` rise with `times`
    significantly (Kendall, one-sided p < alpha), strongly (τ ≥ min_tau) and by at least `growth`
    times their start."""
    from scipy.stats import kendalltau

    third = max(len(values) // 3, 1)
    start, end = float(np.median(values[:third])), float(np.median(values[-third:]))
    if end < (1 + growth) * start or end <= start:
        return None
    result = kendalltau(times, values, alternative="greater")
    tau, p_value = float(result.statistic), float(result.pvalue)
    if not (p_value < settings.alpha and tau >= settings.min_tau):  # nan (constant values) is no trend
        return None
    return start, end, tau, p_value


def oversaturation(
    sent_s: Sequence[float],
    completed: Sequence[tuple[float, float | None, float]],
    now_s: float,
    open_loop: bool,
    settings: SaturationSettings,
) -> str | None:
    """Why a level is over-saturated, or None. `sent_s`: every send time so far; `completed`:
    (sent, first token or None, finished) of each request that ended; times in seconds from the
    level's start."""
    if now_s < settings.min_duration_s or not completed:
        return None
    sent = np.sort(np.asarray(sent_s, dtype=float))
    done = np.asarray(completed, dtype=float).reshape(-1, 3)
    first_done = float(np.min(done[:, 2]))
    reasons = []
    # TTFT of the completed requests sent after the first completion, in send order.
    window = done[(done[:, 0] > first_done) & ~np.isnan(done[:, 1])]
    window = window[np.argsort(window[:, 0])][-MAX_WINDOW:]
    if len(window) >= settings.min_requests:
        ttft_ms = (window[:, 1] - window[:, 0]) * 1e3
        found = rising(window[:, 0], ttft_ms, settings.ttft_growth, settings)
        if found:
            start, end, tau, p_value = found
            reasons.append(
                f"TTFT rose from {start:.0f} to {end:.0f} ms (median of the first and last third of {len(window)} "
                f"requests over {window[-1, 0] - window[0, 0]:.1f} s; Kendall τ={tau:.2f}, p={p_value:.1g})"
            )
    if open_loop:
        sends = sent[sent > first_done][-MAX_WINDOW:]
        if len(sends) >= settings.min_requests:
            finished = np.sort(done[:, 2])
            in_flight = np.searchsorted(sent, sends, side="right") - np.searchsorted(finished, sends, side="right")
            found = rising(sends, in_flight.astype(float), settings.in_flight_growth, settings)
            if found:
                start, end, tau, p_value = found
                reasons.append(
                    f"requests in flight rose from {start:g} to {end:g} (median of the first and last third of "
                    f"{len(sends)} sends over {sends[-1] - sends[0]:.1f} s; Kendall τ={tau:.2f}, p={p_value:.1g})"
                )
    return f"over-saturated: {'; '.join(reasons)}" if reasons else None


class LevelWatch:
    """One level's sends and completions as they happen (perf_counter times), and the
    over-saturation test on them (`check`, or `monitor` while the level runs)."""

    def __init__(self, settings: SaturationSettings, open_loop: bool):
        import scipy.stats  # noqa: F401 - seconds on a busy machine: imported now, not in the level's first check

        self.settings, self.open_loop = settings, open_loop
        self.started: float | None = None  # the first send
        self.sent: list[float] = []
        self.completed: list[tuple[float, float | None, float]] = []

    def on_sent(self, at: float) -> None:
        if self.started is None:
            self.started = at
        self.sent.append(at)

    def on_done(self, sent_at: float, first_at: float | None, finished_at: float | None) -> None:
        if finished_at is not None:
            self.completed.append((sent_at, first_at, finished_at))

    def check(self, now: float) -> str | None:
        if self.started is None:
            return None
        origin = self.started
        return oversaturation(
            [at - origin for at in self.sent],
            [(s - origin, None if f is None else f - origin, e - origin) for s, f, e in self.completed],
            now - origin,
            self.open_loop,
            self.settings,
        )

    async def monitor(self, stop: Callable[[str], Any]) -> None:
        """Checks every check_interval_s; calls `stop(reason)` once the level is over-saturated."""
        while True:
            await asyncio.sleep(self.settings.check_interval_s)
            reason = self.check(time.perf_counter())
            if reason:
                stop(reason)
                return
