"""serve.profile: which load levels a serving job runs, fixed before it starts or decided as it runs.

- `levels` (default): serve.concurrency or serve.request_rate, one level per value, in order.
- `sweep` (GuideLLM's): a synchronous level (one user: one request at a time), a throughput level
  (every request of the level at once: serve.sweep_throughput_users users, default
  serve.requests_per_level), then serve.sweep_rates Poisson rates evenly spaced strictly between
  the two levels' measured request rates (successful requests per second).
- `slo-search`: the highest load on serve.search.axis (concurrency or request_rate) whose level
  meets serve.slo (quantbench.loadgen.slo), by bisection between serve.search.min and .max: the
  minimum first (if it misses, nothing in the range meets it), then the maximum (if it meets it,
  the answer is at least the maximum), then the middle of the bracket (the highest load that met
  it, the lowest that missed) until the bracket is at most serve.search.resolution wide (a
  concurrency: 1 user) or serve.search.max_probes levels ran. Each probe is a level (role probe);
  the answer and its bracket are job metrics (`slo_search_*`).

A profile hands out the next level from the levels measured so far (each one's run and summary
row), or None when the job's load is done; it assumes, as any search for a capacity does, that a
higher load does not serve better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from quantbench.errors import JobSkipped, unknown_choice
from quantbench.loadgen.load import Level
from quantbench.loadgen.slo import describe_limits, misses, slo_limits

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from quantbench.loadgen.load import LevelRun

PROFILES = ("levels", "sweep", "slo-search")
SEARCH_AXES = {"concurrency": "users", "request_rate": "req/s"}
RATE_DIGITS = 4  # significant digits of a rate a profile computes: "3.142 req/s", not 15 digits


@dataclass
class Measured:
    """A level that ran: its run and its summary row (quantbench.loadgen.summary.level_row)."""

    run: LevelRun
    summary: dict[str, Any]


class Profile(Protocol):
    name: str
    load_mode: str  # for result.json: how the load was driven
    max_concurrency: int | None  # the most users a level may have (a server's slots); None: open loop only

    def next_level(self, done: Sequence[Measured]) -> Level | None: ...

    def facts(self, done: Sequence[Measured]) -> dict[str, Any]: ...


def _rounded(rate: float) -> float:
    return float(f"{rate:.{RATE_DIGITS}g}")


class FixedLevels:
    """serve.profile=levels: the levels serve.concurrency or serve.request_rate lists."""

    name = "levels"

    def __init__(self, levels: list[Level]):
        self.levels = levels
        self.load_mode = (
            "closed loop"
            if levels[0].concurrency is not None
            else "trace replay (open loop)"
            if levels[0].schedule is not None
            else "open loop (Poisson)"
        )
        self.max_concurrency = max((level.concurrency or 0 for level in levels), default=0) or None

    def next_level(self, done: Sequence[Measured]) -> Level | None:
        return self.levels[len(done)] if len(done) < len(self.levels) else None

    def facts(self, done: Sequence[Measured]) -> dict[str, Any]:
        return {}


class Sweep:
    """serve.profile=sweep: synchronous, throughput, then `rates` Poisson rates between them."""

    name = "sweep"
    load_mode = "sweep: synchronous (1 user), throughput (every request at once), then open-loop Poisson rates"

    def __init__(self, throughput_users: int, rates: int):
        self.throughput_users, self.n_rates = throughput_users, rates
        self.max_concurrency = throughput_users

    def rates(self, done: Sequence[Measured]) -> list[float]:
        """Evenly spaced strictly between the synchronous and the throughput level's request rates."""
        import numpy as np

        low, high = sorted(float(done[index].summary["request_throughput_per_s"]) for index in (0, 1))
        return [_rounded(rate) for rate in np.linspace(low, high, self.n_rates + 2)[1:-1]]

    def next_level(self, done: Sequence[Measured]) -> Level | None:
        if not done:
            return Level(0, concurrency=1, profile=self.name, role="synchronous")
        if len(done) == 1:
            return Level(1, concurrency=self.throughput_users, profile=self.name, role="throughput")
        rates = self.rates(done)
        position = len(done) - 2
        if position < len(rates):
            return Level(len(done), request_rate=rates[position], profile=self.name, role="rate")
        return None

    def facts(self, done: Sequence[Measured]) -> dict[str, Any]:
        if len(done) < 2:
            return {}
        synchronous, throughput = (float(done[index].summary["request_throughput_per_s"]) for index in (0, 1))
        facts: dict[str, Any] = {
            "sweep_synchronous_per_s": synchronous,
            "sweep_throughput_per_s": throughput,
            "sweep_rates_per_s": self.rates(done),
        }
        if throughput <= synchronous:
            facts["sweep_note"] = (
                f"the throughput level served {throughput:.3g} req/s, no more than the synchronous level's "
                f"{synchronous:.3g}: the server serves one request at a time, or the throughput level was too small "
                "(serve.sweep_throughput_users)"
            )
        return facts


class SloSearch:
    """serve.profile=slo-search: bisection for the highest load that meets `limits`."""

    name = "slo-search"

    def __init__(
        self, axis: str, low: float, high: float, resolution: float | None, max_probes: int, limits: dict[str, float]
    ):
        self.axis, self.low, self.high = axis, low, high
        self.resolution = resolution if resolution is not None else (1 if axis == "concurrency" else 0.0)
        self.max_probes, self.limits = max_probes, limits
        self.unit = SEARCH_AXES[axis]
        self.load_mode = f"slo-search over {axis} ({'closed loop' if axis == 'concurrency' else 'open loop (Poisson)'})"
        self.max_concurrency = int(high) if axis == "concurrency" else None

    def _level(self, index: int, load: float) -> Level:
        if self.axis == "concurrency":
            return Level(index, concurrency=int(load), profile=self.name, role="probe")
        return Level(index, request_rate=load, profile=self.name, role="probe")

    @staticmethod
    def load_of(level: Level) -> float:
        return float(level.concurrency if level.concurrency is not None else level.request_rate)

    def bracket(self, done: Sequence[Measured]) -> tuple[float | None, float | None]:
        """(the highest load that met the SLO, the lowest that missed it), from the probes so far."""
        passing = [self.load_of(m.run.level) for m in done if not misses(m.summary, self.limits)]
        failing = [self.load_of(m.run.level) for m in done if misses(m.summary, self.limits)]
        return max(passing, default=None), min(failing, default=None)

    def _next_load(self, done: Sequence[Measured]) -> tuple[float | None, str]:
        """(the next load to probe, or None and why the search ends)."""
        probed = {self.load_of(m.run.level) for m in done}
        passing, failing = self.bracket(done)
        if not done:
            return self.low, ""
        if failing is not None and failing <= self.low:
            return None, f"the lowest load, {self.low:g} {self.unit} (serve.search.min), misses it"
        if self.high not in probed:
            if len(done) >= self.max_probes:
                return None, f"serve.search.max_probes={self.max_probes} probes ran before the maximum was probed"
            return self.high, ""
        if failing is None:
            return None, (
                f"even the highest load, {self.high:g} {self.unit} (serve.search.max), meets it: "
                "the capacity is at least that; raise serve.search.max"
            )
        assert passing is not None
        width = failing - passing
        if len(done) >= self.max_probes:
            return None, f"serve.search.max_probes={self.max_probes} probes ran (bracket {width:g} {self.unit} wide)"
        if width <= self.resolution:
            return None, ""
        middle = (passing + failing) // 2 if self.axis == "concurrency" else _rounded((passing + failing) / 2)
        if middle in probed or not passing < middle < failing:
            return None, ""  # as fine as the loads can be told apart
        return middle, ""

    def next_level(self, done: Sequence[Measured]) -> Level | None:
        load, _ = self._next_load(done)
        return None if load is None else self._level(len(done), load)

    def facts(self, done: Sequence[Measured]) -> dict[str, Any]:
        passing, failing = self.bracket(done)
        _, why = self._next_load(done)
        bracketed = passing is not None and failing is not None
        objectives = describe_limits(self.limits)
        if bracketed:
            missed = next(m for m in done if self.load_of(m.run.level) == failing)
            answer = (
                f"highest {self.axis} meeting {objectives}: {passing:g} {self.unit}; {failing:g} {self.unit} misses it "
                f"({'; '.join(misses(missed.summary, self.limits))})"
            )
            reason = f"{answer}; {why}" if why else answer
        else:
            reason = f"not bracketed: {why or 'no probe ran'}"
        return {
            "slo_search_axis": self.axis,
            "slo_search_objectives": objectives,
            "slo_search_best_load": passing,
            "slo_search_first_failing_load": failing,
            "slo_search_bracketed": bracketed,
            "slo_search_reason": reason,
            "slo_search_probes": len(done),
        }


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise JobSkipped(f"{what} must be a number, got {value!r}") from None


def slo_search(serve: DictConfig) -> SloSearch:
    from omegaconf import OmegaConf

    search = serve.search
    limits = slo_limits(OmegaConf.to_container(serve.slo, resolve=True))
    if not limits:
        raise JobSkipped(
            "serve.profile=slo-search needs an objective to search under: set serve.slo.e2e_ms, ttft_ms or tpot_ms"
        )
    if search.axis not in SEARCH_AXES:
        raise JobSkipped(unknown_choice("serve.search.axis", str(search.axis), list(SEARCH_AXES)))
    low, high = _number(search.min, "serve.search.min"), _number(search.max, "serve.search.max")
    if search.axis == "concurrency" and (low != int(low) or high != int(high) or low < 1):
        raise JobSkipped(f"serve.search.min and max are users: whole numbers of at least 1, got {low:g} and {high:g}")
    if low <= 0:
        raise JobSkipped(f"serve.search.min must be a positive request rate, got {low:g}")
    if low > high:
        raise JobSkipped(f"serve.search.min ({low:g}) is above serve.search.max ({high:g})")
    if int(search.max_probes) < 2:
        raise JobSkipped(
            f"serve.search.max_probes must be at least 2 (the minimum and the maximum), got {search.max_probes}"
        )
    resolution = None if search.resolution is None else _number(search.resolution, "serve.search.resolution")
    if resolution is not None and resolution <= 0:
        raise JobSkipped(f"serve.search.resolution must be positive, got {resolution:g}")
    return SloSearch(str(search.axis), low, high, resolution, int(search.max_probes), limits)


def sweep(serve: DictConfig) -> Sweep:
    users = serve.sweep_throughput_users if serve.sweep_throughput_users is not None else serve.requests_per_level
    if users is None:
        raise JobSkipped(
            "serve.profile=sweep sends a level's requests at once, but serve.requests_per_level is null: "
            "set serve.sweep_throughput_users (users of the throughput level)"
        )
    if int(users) < 1 or int(serve.sweep_rates) < 0:
        raise JobSkipped(
            f"serve.sweep_throughput_users must be at least 1 and serve.sweep_rates at least 0, got {users} and "
            f"{serve.sweep_rates}"
        )
    return Sweep(int(users), int(serve.sweep_rates))


def load_profile(serve: DictConfig, levels: list[Level]) -> Profile:
    """The profile serve.profile names; `levels` are the explicit ones (serve.concurrency or
    serve.request_rate), which only the `levels` profile takes. JobSkipped for settings that cannot run."""
    name = str(serve.profile)
    if name not in PROFILES:
        raise JobSkipped(unknown_choice("serve.profile", name, list(PROFILES)))
    if name == "levels":
        return FixedLevels(levels)
    if list(serve.request_rate) or [int(users) for users in serve.concurrency] != [1]:
        raise JobSkipped(
            f"serve.profile={name} decides its own levels: leave serve.concurrency and serve.request_rate unset "
            "(or use serve.profile=levels)"
        )
    return sweep(serve) if name == "sweep" else slo_search(serve)
