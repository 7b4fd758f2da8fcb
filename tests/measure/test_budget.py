"""The time budget of a job: bench.max_seconds caps the timed phase (never below 3 iterations), and
bench.warmup_max_seconds ends warm-up after a slow iteration (what a real job records:
tests/e2e/test_budget_jobs.py)."""

from __future__ import annotations

import pytest

from quantbench.measure.loop import MIN_BUDGET_ITERATIONS, IterationSample, TimedPlan, run_iterations


class FakeClock:
    """A clock that only moves when a fake iteration runs: the loop's decisions, without waiting."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def fake_step(clock: FakeClock, seconds: float | list[float], calls: list[int] | None = None):
    """A step that takes `seconds` (or the next of a list of durations) on the fake clock."""
    durations = iter(seconds) if isinstance(seconds, list) else None

    def step(iteration: int) -> IterationSample:
        clock.now_s += next(durations) if durations is not None else seconds
        if calls is not None:
            calls.append(iteration)
        return IterationSample(iteration, 1.0, None, None, 1, 1, 1)

    return step


def run(seconds: float | list[float], calls: list[int] | None = None, ticks: list | None = None, **settings):
    clock = FakeClock()
    plan = dict(warmup_iterations=0, min_iterations=10, min_seconds=0.0, max_iterations=1000)
    plan.update(settings)
    tick = (lambda *args: ticks.append(args)) if ticks is not None else None
    return run_iterations(fake_step(clock, seconds, calls), clock=clock, **plan, **({"tick": tick} if tick else {}))


def test_max_seconds_overrides_min_iterations_and_the_result_says_so():
    result = run(2.0, min_iterations=100, max_seconds=10.0)
    # 4 iterations end at 8 s, a 5th is expected to end at 10 s (not past the budget), a 6th at 12 s.
    assert len(result.samples) == 5
    metrics = result.budget_metrics()
    assert metrics["budget_cut"] is True
    assert "bench.max_seconds=10" in metrics["budget_cut_reason"] and "timed" in metrics["budget_cut_reason"]


def test_max_seconds_overrides_min_seconds_too():
    result = run(1.0, min_iterations=1, min_seconds=3600.0, max_seconds=5.0)
    assert len(result.samples) == 5 and result.budget_metrics()["budget_cut"] is True


def test_the_budget_never_stops_before_three_timed_iterations():
    result = run(100.0, min_iterations=50, max_seconds=1.0)
    assert len(result.samples) == MIN_BUDGET_ITERATIONS == 3
    assert result.budget_metrics()["budget_cut"] is True


def test_a_run_that_meets_its_minimums_within_the_budget_is_not_cut():
    result = run(1.0, min_iterations=3, max_seconds=10.0, warmup_iterations=2, warmup_max_seconds=5.0)
    assert len(result.samples) == 3
    assert result.budget_metrics() == {
        "budget_cut": False,
        "budget_cut_reason": None,
        "warmup_iterations_done": 2,
        "warmup_s": 2.0,
    }


def test_max_iterations_is_a_plan_not_a_budget_cut():
    result = run(1.0, min_iterations=100, max_iterations=4, max_seconds=1000.0)
    assert len(result.samples) == 4 and result.budget_metrics()["budget_cut"] is False


def test_warmup_stops_after_the_first_iteration_longer_than_warmup_max_seconds():
    calls: list[int] = []
    result = run(
        [0.5, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0], calls, warmup_iterations=4, warmup_max_seconds=2.0, min_iterations=3
    )
    assert result.warmup_iterations_done == 2
    assert calls == [-1, -2, 0, 1, 2]  # two warm-up iterations (negative), then the timed ones
    metrics = result.budget_metrics()
    assert metrics["budget_cut"] is True and "bench.warmup_max_seconds=2" in metrics["budget_cut_reason"]


def test_a_slow_last_warmup_iteration_cuts_nothing():
    result = run(3.0, warmup_iterations=1, warmup_max_seconds=2.0, min_iterations=3)
    assert result.warmup_iterations_done == 1 and result.budget_metrics()["budget_cut"] is False


@pytest.mark.parametrize("pace_s", [0.25, 0.75, 2.0, 3.0, 50.0])
@pytest.mark.parametrize(
    "plan",
    [
        TimedPlan(min_iterations=10, min_seconds=2.0, max_iterations=1000, max_seconds=300.0),
        TimedPlan(min_iterations=100, min_seconds=0.0, max_iterations=1000, max_seconds=20.0),
        TimedPlan(min_iterations=1, min_seconds=30.0, max_iterations=40, max_seconds=60.0),
        TimedPlan(min_iterations=2, min_seconds=0.0, max_iterations=1000, max_seconds=0.0),
    ],
)
def test_the_progress_estimate_is_what_the_loop_does_at_a_steady_pace(plan, pace_s):
    result = run(
        pace_s,
        min_iterations=plan.min_iterations,
        min_seconds=plan.min_seconds,
        max_iterations=plan.max_iterations,
        max_seconds=plan.max_seconds,
    )
    assert len(result.samples) == plan.expected_iterations(pace_s)


def test_ticks_announce_each_phase_and_count_down_the_remaining_time():
    ticks: list[tuple] = []
    run(2.0, ticks=ticks, warmup_iterations=2, min_iterations=4)
    phases = [(phase, done) for phase, done, _, _ in ticks]
    assert phases == [
        ("warm-up", 0),
        ("warm-up", 1),
        ("warm-up", 2),
        ("timed", 0),
        *(("timed", n) for n in range(1, 5)),
    ]
    # At a steady 2 s per iteration: after the first warm-up iteration, 1 more + 4 timed remain.
    assert ticks[1] == ("warm-up", 1, 2, 10.0)
    assert ticks[3] == ("timed", 0, 4, 8.0)
    assert ticks[-1] == ("timed", 4, 4, 0.0)


def test_the_budget_keys_are_in_the_bench_config(compose_config):
    bench = compose_config([]).bench
    assert bench.max_seconds == 300 and bench.warmup_max_seconds == 60
    unlimited = compose_config(["bench.max_seconds=null", "bench.warmup_max_seconds=null"]).bench
    assert unlimited.max_seconds is None and unlimited.warmup_max_seconds is None
