"""The over-saturation test on simulated levels: a single-server queue fed by seeded Poisson arrivals
(or a closed loop), judged as the level runs, every half second, as quantbench judges a real one."""

from __future__ import annotations

import numpy as np
import pytest

from quantbench.loadgen.saturation import LevelWatch, SaturationSettings, oversaturation, settings_problem

SERVICE_S = 0.1  # each request holds the one slot this long; its first token comes a tenth of the way in
DEFAULTS = SaturationSettings()


def queue(rate: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sent, first token, finished) of `n` Poisson arrivals at `rate` to one FIFO slot."""
    rng = np.random.default_rng(seed)
    sent = np.cumsum(rng.exponential(1 / rate, n))
    first, finished, free = [], [], 0.0
    for at in sent:
        start = max(at, free)
        service = SERVICE_S * rng.uniform(0.9, 1.1)
        first.append(start + 0.1 * service)
        finished.append(start + service)
        free = start + service
    return sent, np.array(first), np.array(finished)


def closed_loop(users: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`users` users on the one slot, each sending again as its request ends."""
    rng = np.random.default_rng(0)
    ready, free, rows = [0.0] * users, 0.0, []
    for _ in range(n):
        user = int(np.argmin(ready))
        at = ready[user]
        start = max(at, free)
        service = SERVICE_S * rng.uniform(0.9, 1.1)
        rows.append((at, start + 0.1 * service, start + service))
        free = ready[user] = start + service
    sent, first, finished = (np.array(column) for column in zip(*rows))
    return sent, first, finished


def first_verdict(sent, first, finished, open_loop=True, settings=DEFAULTS) -> tuple[float, int, str] | None:
    """(when, requests sent by then, why) of the first check that finds the level over-saturated."""
    for now in np.arange(0.5, finished.max(), 0.5):
        done = [(s, f if f <= now else None, e) for s, f, e in zip(sent, first, finished) if e <= now]
        reason = oversaturation(sent[sent <= now], done, now, open_loop, settings)
        if reason:
            return float(now), int((sent <= now).sum()), reason
    return None


@pytest.mark.parametrize("seed", range(3))
def test_a_queue_at_twice_its_capacity_is_found_within_a_hundred_requests(seed):
    sent, first, finished = queue(rate=20.0, n=300, seed=seed)  # capacity: 10 req/s
    found = first_verdict(sent, first, finished)
    assert found is not None
    when, requests, reason = found
    assert when == pytest.approx(DEFAULTS.min_duration_s, abs=1.0) and requests <= 120
    assert "TTFT rose" in reason and "requests in flight rose" in reason


@pytest.mark.parametrize("seed", range(3))
def test_a_queue_at_half_its_capacity_is_never_over_saturated(seed):
    assert first_verdict(*queue(rate=5.0, n=300, seed=seed)) is None


def test_a_closed_loop_is_judged_by_ttft_alone():
    sent, first, finished = closed_loop(users=8, n=300)
    assert first_verdict(sent, first, finished, open_loop=False) is None
    # The same sends judged as an open loop: a request in flight per user is no growth either.
    assert first_verdict(sent, first, finished, open_loop=True) is None


def test_it_waits_for_its_minimum_requests_and_duration():
    sent, first, finished = queue(rate=40.0, n=300, seed=0)
    later = SaturationSettings(min_duration_s=6.0)
    assert first_verdict(sent, first, finished, settings=later)[0] >= 6.0
    few = SaturationSettings(min_requests=400)
    assert first_verdict(sent, first, finished, settings=few) is None


def test_the_watch_judges_perf_counter_times_from_its_first_send():
    sent, first, finished = queue(rate=20.0, n=200, seed=1)
    watch = LevelWatch(DEFAULTS, open_loop=True)
    origin = 1000.0  # perf_counter seconds: anything
    for s in sent[sent <= 6.0]:
        watch.on_sent(origin + s)
    for s, f, e in sorted(zip(sent, first, finished), key=lambda row: row[2]):
        if e <= 6.0:
            watch.on_done(origin + s, origin + f, origin + e)
    assert watch.check(origin + 1.0) is None  # before min_duration_s
    assert watch.check(origin + 6.0).startswith("over-saturated: ")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (SaturationSettings(min_requests=2), "min_requests"),
        (SaturationSettings(alpha=1.5), "alpha"),
        (SaturationSettings(min_tau=0.0), "min_tau"),
        (SaturationSettings(ttft_growth=-1.0), "ttft_growth"),
        (SaturationSettings(check_interval_s=0.0), "check_interval_s"),
    ],
)
def test_thresholds_that_cannot_work_are_named(settings, message):
    assert message in settings_problem(settings)
    assert settings_problem(DEFAULTS) is None
