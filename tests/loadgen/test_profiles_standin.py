"""Load profiles, over-saturation and client processes against the stand-in server
(tests/support/serve_standin.py), through the driver a serving job uses, without the job around it.

One stand-in for the module: four slots of 4 tokens x 10 ms each, so it serves about 100 req/s
(one user gets ~20 req/s); above that its queue grows.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from quantbench.loadgen.driver import LoadPlan, ServeFailed, run_levels
from quantbench.loadgen.load import Level
from quantbench.loadgen.profiles import FixedLevels, Sweep
from quantbench.loadgen.prompts import LevelPrompts, Prompt
from quantbench.loadgen.records import level_records
from quantbench.loadgen.saturation import LevelWatch, SaturationSettings
from quantbench.loadgen.summary import level_row
from quantbench.loadgen.workers import client_pool

PROMPTS = [Prompt(f"p{index}", f"question {index}", chat=False, input_tokens=3) for index in range(40)]
TOKENS = 4
QUICK = SaturationSettings(min_requests=10, min_duration_s=1.0, check_interval_s=0.2)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    from support import STANDIN

    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.server import ServerProcess, free_port

    port = free_port()
    command = [sys.executable, str(STANDIN), "serve", "m", "--port", str(port), "--standin-delay-ms", "10"]
    log = tmp_path_factory.mktemp("standin") / "server.log"
    with ServerProcess([*command, "--standin-slots", "4"], log) as server:
        server.wait_healthy(f"http://127.0.0.1:{port}/health", 60.0)
        yield Endpoint(base_url=f"http://127.0.0.1:{port}", model="m")


class Progress:
    def tick(self, *args, **kwargs) -> None:
        pass


def summary(run, slo=None) -> dict:
    records = level_records(run, {prompt.id: prompt for prompt in PROMPTS}, TOKENS, lambda text: 0)
    return level_row(run, records, slo or {}, seed=0)


def plan(endpoint, requests: int = 16, processes: int = 1, saturation=None) -> LoadPlan:
    return LoadPlan(
        endpoint=endpoint,
        options={},
        max_tokens=TOKENS,
        timeout_s=30.0,
        seed=0,
        requests_per_level=requests,
        duration_s=None,
        warmup_requests=1,
        client_processes=processes,
        saturation=saturation,
    )


def test_a_sweep_decides_its_rates_from_its_measured_levels(endpoint):
    runs = []
    facts = run_levels(plan(endpoint), Sweep(16, 2), PROMPTS, runs, Progress(), None, summary)
    roles = [(run.level.role, run.level.concurrency, run.level.request_rate) for run in runs]
    synchronous, throughput = (summary(run)["request_throughput_per_s"] for run in runs[:2])
    assert roles[:2] == [("synchronous", 1, None), ("throughput", 16, None)] and len(roles) == 4
    assert synchronous < throughput  # four slots serve more at once than one user asks for
    rates = [run.level.request_rate for run in runs[2:]]
    assert rates == facts["sweep_rates_per_s"]
    assert rates == pytest.approx(list(np.linspace(synchronous, throughput, 4)[1:-1]), rel=1e-3)
    assert all(len(run.exchanges) == 16 and not run.stopped_early_reason for run in runs)


def test_an_over_saturated_level_stops_early_and_cancels_its_requests_in_flight(endpoint):
    started = time.perf_counter()
    stopped = schedule(endpoint, 1, Level(0, request_rate=250.0), requests=2000, saturation=QUICK)
    row = summary(stopped)
    assert row["oversaturated"] and row["stopped_early"] and "requests in flight rose" in row["stopped_early_reason"]
    assert row["n_requests"] < 1000 and row["n_cancelled_requests"] > 0 and row["n_failed_requests"] == 0
    assert row["n_requests"] == len(stopped.exchanges) and time.perf_counter() - started < 10
    # Nothing left behind: the next level finds the server idle.
    after = schedule(endpoint, 1, Level(1, concurrency=1), requests=5, saturation=QUICK)
    assert not after.stopped_early_reason and summary(after)["ttft_p50_ms"] < 100


def schedule(endpoint, processes: int, *levels: Level, requests: int, saturation=None):
    """The runs of these levels (one level: its run)."""
    runs = []
    run_levels(
        plan(endpoint, requests=requests, processes=processes, saturation=saturation),
        FixedLevels(list(levels)),
        PROMPTS,
        runs,
        Progress(),
        None,
        summary,
    )
    return runs if len(levels) > 1 else runs[0]


def test_two_client_processes_measure_what_one_measures(endpoint):
    # An open loop at a third of the stand-in's capacity, then a closed loop of 3 users.
    levels = (Level(0, request_rate=30.0), Level(1, concurrency=3))
    (one, closed_one), (two, closed_two) = (schedule(endpoint, n, *levels, requests=30) for n in (1, 2))
    assert (one.client_processes, two.client_processes) == (1, 2)
    rows = [summary(run) for run in (one, two)]
    records = [level_records(run, {p.id: p for p in PROMPTS}, TOKENS, lambda text: 0) for run in (one, two)]
    # The same schedule: the same prompts at the same offsets from the level's start (in send order,
    # two arrivals microseconds apart may go out the other way round from two processes).
    for scheduled in records:
        assert len(scheduled) == 30 and all(record.ok for record in scheduled)
        scheduled.sort(key=lambda record: record.scheduled_s)
    offsets = [np.array([r.scheduled_s for r in level]) - level[0].scheduled_s for level in records]
    np.testing.assert_allclose(offsets[0], offsets[1], atol=1e-6)
    assert [r.prompt_id for r in records[0]] == [r.prompt_id for r in records[1]]
    for key in ("ttft_p50_ms", "e2e_p50_ms", "e2e_p95_ms"):
        assert rows[1][key] == pytest.approx(rows[0][key], abs=15.0), key
    assert max(r.send_lag_ms for r in records[1]) < 50.0
    # The closed loop: users and the request budget split, the level's prompt order kept.
    assert [len(run.exchanges) for run in (closed_one, closed_two)] == [30, 30]
    assert {e.prompt_id for e in closed_one.exchanges} == {e.prompt_id for e in closed_two.exchanges}
    assert summary(closed_two)["e2e_p50_ms"] == pytest.approx(summary(closed_one)["e2e_p50_ms"], abs=15.0)


def gone(pid: int) -> bool:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("ending", ["a client process dies", "Ctrl-C"])
def test_no_client_process_outlives_its_level(endpoint, ending):
    level = Level(0, concurrency=4)
    chosen = LevelPrompts(PROMPTS, 0, level.index)
    with pytest.raises((ServeFailed, KeyboardInterrupt)) as raised:
        with client_pool(plan(endpoint, requests=40, processes=2)) as pool:
            pids = [process.pid for process in pool.processes]

            def tick(count: int) -> None:  # at the level's first completion
                if ending == "Ctrl-C":
                    raise KeyboardInterrupt
                os.kill(pids[1], 9)

            pool.run_level(plan(endpoint), level, chosen, 4, tick, LevelWatch(QUICK, open_loop=False))
    if ending == "a client process dies":
        assert raised.type is ServeFailed
        assert str(raised.value).startswith(f"client process 1 (pid {pids[1]}) was killed by SIGKILL during level")
    assert all(gone(pid) for pid in pids)
