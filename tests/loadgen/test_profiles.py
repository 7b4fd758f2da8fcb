"""serve.profile's decisions from measured levels (sweep rates, the SLO search's bisection and its
bracket) on made-up summaries, and every setting that cannot run as a skipped job's one line."""

from __future__ import annotations

import pytest

from quantbench.errors import JobSkipped
from quantbench.loadgen.load import Level, LevelRun
from quantbench.loadgen.profiles import FixedLevels, Measured, SloSearch, Sweep
from quantbench.scenarios.serve import serve_profile


def measured(level: Level, **summary) -> Measured:
    row = {"n_requests": 16, "n_failed_requests": 0, **summary}
    return Measured(LevelRun(level=level, started_at=0.0, finished_at=1.0), row)


def run(profile, summary_of) -> list[Measured]:
    """Every level the profile hands out, each 'measured' by `summary_of(level)`."""
    done: list[Measured] = []
    while (level := profile.next_level(done)) is not None:
        done.append(measured(level, **summary_of(level)))
        assert len(done) < 50, "the profile does not end"
    return done


def test_the_sweep_rates_lie_evenly_strictly_between_the_measured_levels():
    sweep = Sweep(throughput_users=16, rates=3)
    throughput = {0: 2.0, 1: 10.0}
    done = run(sweep, lambda level: {"request_throughput_per_s": throughput.get(level.index, 5.0)})
    assert [(m.run.level.role, m.run.level.concurrency, m.run.level.request_rate) for m in done] == [
        ("synchronous", 1, None),
        ("throughput", 16, None),
        ("rate", None, 4.0),
        ("rate", None, 6.0),
        ("rate", None, 8.0),
    ]
    assert {m.run.level.profile for m in done} == {"sweep"}
    facts = sweep.facts(done)
    assert facts["sweep_rates_per_s"] == [4.0, 6.0, 8.0] and "sweep_note" not in facts
    # A server that serves one request at a time: no faster at once; said so, rates still between.
    done = run(Sweep(16, 2), lambda level: {"request_throughput_per_s": 3.0 if level.index == 0 else 2.4})
    assert [m.run.level.request_rate for m in done[2:]] == [2.6, 2.8]
    assert "one request at a time" in Sweep(16, 2).facts(done)["sweep_note"]


def slo_of(capacity: float):
    """A server whose E2E p95 is 100 ms up to `capacity` and 900 ms above it."""
    return lambda level: {"e2e_p95_ms": 100.0 if SloSearch.load_of(level) <= capacity else 900.0}


@pytest.mark.parametrize("capacity", [1, 5, 13, 37, 63])
def test_the_search_bisects_to_the_highest_concurrency_that_meets_the_slo(capacity):
    search = SloSearch("concurrency", 1, 64, None, 12, {"e2e_ms": 500.0})
    done = run(search, slo_of(capacity))
    loads = [SloSearch.load_of(m.run.level) for m in done]
    assert loads[:2] == [1, 64] and len(set(loads)) == len(loads)
    assert {m.run.level.role for m in done} == {"probe"}
    facts = search.facts(done)
    assert facts["slo_search_bracketed"] is True
    assert (facts["slo_search_best_load"], facts["slo_search_first_failing_load"]) == (capacity, capacity + 1)
    assert (
        f"{capacity:g} users; {capacity + 1:g} users misses it (E2E p95 900 ms > 500 ms)" in facts["slo_search_reason"]
    )
    assert len(done) <= 2 + 6  # log2(64) bisections after the two ends


def test_a_search_that_does_not_bracket_says_which_end_and_why():
    search = SloSearch("concurrency", 2, 8, None, 8, {"e2e_ms": 500.0})
    below = search.facts(run(search, slo_of(1)))
    assert below["slo_search_bracketed"] is False and below["slo_search_best_load"] is None
    assert below["slo_search_first_failing_load"] == 2 and "the lowest load, 2 users" in below["slo_search_reason"]
    above = search.facts(run(search, slo_of(100)))
    assert above["slo_search_bracketed"] is False and above["slo_search_best_load"] == 8
    assert "raise serve.search.max" in above["slo_search_reason"] and above["slo_search_probes"] == 2


def test_a_rate_search_stops_at_its_resolution_or_its_probes():
    search = SloSearch("request_rate", 0.5, 8.0, 0.25, 20, {"e2e_ms": 500.0})
    done = run(search, slo_of(3.3))
    facts = search.facts(done)
    best, failing = facts["slo_search_best_load"], facts["slo_search_first_failing_load"]
    assert best <= 3.3 < failing and failing - best <= 0.25
    assert all(m.run.level.request_rate is not None for m in done)
    capped = SloSearch("request_rate", 0.5, 8.0, None, 4, {"e2e_ms": 500.0})
    facts = capped.facts(run(capped, slo_of(3.3)))
    assert facts["slo_search_probes"] == 4 and facts["slo_search_bracketed"] is True
    assert "serve.search.max_probes=4" in facts["slo_search_reason"]


def test_a_probe_that_failed_or_was_over_saturated_misses_the_slo():
    search = SloSearch("concurrency", 1, 4, None, 8, {"e2e_ms": 500.0})
    done = [
        measured(Level(0, concurrency=1, role="probe"), e2e_p95_ms=100.0),
        measured(Level(1, concurrency=4, role="probe"), e2e_p95_ms=100.0, n_failed_requests=16),
        measured(Level(2, concurrency=2, role="probe"), e2e_p95_ms=100.0, oversaturated=True),
    ]
    facts = search.facts(done)
    assert (facts["slo_search_best_load"], facts["slo_search_first_failing_load"]) == (1, 2)
    assert "over-saturated" in facts["slo_search_reason"]


@pytest.fixture(scope="module")
def serve_node():
    """`serve` as scenario=serve composes it, once (composing costs a fraction of a second); each
    case merges its overrides into a copy, with the schema's type checks."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from quantbench.config.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        node = compose(config_name="config", overrides=["scenario=serve"]).serve
    GlobalHydra.instance().clear()

    def with_overrides(overrides: list[str]):
        from omegaconf import OmegaConf

        return OmegaConf.merge(node, OmegaConf.from_dotlist([item.removeprefix("serve.") for item in overrides]))

    return with_overrides


def test_the_default_profile_runs_the_listed_levels(serve_node):
    profile = serve_profile(serve_node(["serve.concurrency=[1,4]"]))
    assert isinstance(profile, FixedLevels) and profile.max_concurrency == 4
    done = run(profile, lambda level: {})
    assert [(m.run.level.concurrency, m.run.level.kind, m.run.level.profile) for m in done] == [
        (1, "concurrency", "levels"),
        (4, "concurrency", "levels"),
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["serve.profile=stepwise"], "unknown serve.profile 'stepwise'"),
        (["serve.profile=sweep", "serve.concurrency=[1,4]"], "decides its own levels"),
        (["serve.profile=sweep", "serve.requests_per_level=null", "serve.duration_s=10"], "sweep_throughput_users"),
        (["serve.profile=sweep", "serve.sweep_rates=-1"], "at least 0"),
        (["serve.profile=slo-search"], "needs an objective"),
        (["serve.profile=slo-search", "serve.slo.e2e_ms=500", "serve.search.min=9", "serve.search.max=4"], "above"),
        (["serve.profile=slo-search", "serve.slo.e2e_ms=500", "serve.search.min=1.5"], "whole numbers"),
        (["serve.profile=slo-search", "serve.slo.e2e_ms=500", "serve.search.axis=users"], "serve.search.axis"),
        (
            [
                "serve.profile=slo-search",
                "serve.slo.e2e_ms=500",
                "serve.search.axis=request_rate",
                "serve.search.min=0",
            ],
            "positive request rate",
        ),
        (["serve.profile=slo-search", "serve.slo.e2e_ms=500", "serve.search.max_probes=1"], "max_probes"),
        (["serve.profile=slo-search", "serve.slo.e2e_ms=500", "serve.search.resolution=0"], "resolution"),
        (["serve.client_processes=0"], "client_processes"),
        (["serve.oversaturation.alpha=2"], "alpha"),
    ],
)
def test_settings_that_cannot_run_are_skipped_with_one_line(serve_node, overrides, message):
    with pytest.raises(JobSkipped, match=message) as raised:
        serve_profile(serve_node(overrides))
    assert "\n" not in str(raised.value)
