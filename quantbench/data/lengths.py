"""Token lengths drawn from a named distribution: the input and output lengths of a synthetic workload.

Every kind is described by the same numbers, so switching kinds keeps the workload's size:
`mean` and `stdev` are the mean and standard deviation of the lengths themselves (before clipping),
`min` and `max` clip them (`max` null: no upper clip, the model's context is checked later).

- fixed: every length is `mean` (`stdev` is not used);
- uniform: integers spread evenly over mean ± stdev·√3 (the width whose standard deviation is stdev);
- normal: N(mean, stdev²), rounded;
- lognormal: the log-normal whose own mean and standard deviation are `mean` and `stdev` (long right
  tail, as request lengths of real traffic have), rounded.

Draws come from a numpy Generator seeded by the caller, so a workload is the same on every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantbench.errors import JobSkipped, unknown_choice

if TYPE_CHECKING:
    import numpy as np

DISTRIBUTIONS = ("fixed", "uniform", "normal", "lognormal")


@dataclass(frozen=True)
class LengthDistribution:
    key: str  # the config key it came from (dataset.input_tokens), named in every error
    distribution: str
    mean: float
    stdev: float
    min: int
    max: int | None

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` lengths (int64), each in [min, max]."""
        import numpy as np

        if self.distribution == "fixed" or self.stdev == 0:
            values = np.full(count, self.mean)
        elif self.distribution == "uniform":
            half_width = self.stdev * math.sqrt(3.0)
            values = rng.uniform(self.mean - half_width, self.mean + half_width, count)
        elif self.distribution == "normal":
            values = rng.normal(self.mean, self.stdev, count)
        else:  # lognormal, with the lengths' own mean and stdev
            sigma2 = math.log1p((self.stdev / self.mean) ** 2)
            values = rng.lognormal(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2), count)
        upper = np.inf if self.max is None else self.max
        return np.clip(np.rint(values), self.min, upper).astype(np.int64)


def length_distribution(node: Any, key: str) -> LengthDistribution:
    """The distribution a config node ({distribution, mean, stdev, min, max}) describes; JobSkipped
    naming `key` for settings that cannot describe lengths."""
    distribution = str(node.get("distribution"))
    if distribution not in DISTRIBUTIONS:
        raise JobSkipped(f"{key}.distribution: {unknown_choice('length distribution', distribution, DISTRIBUTIONS)}")
    values = {name: node.get(name) for name in ("mean", "stdev", "min", "max")}
    for name in ("mean", "stdev", "min"):
        if values[name] is None:
            raise JobSkipped(f"{key}.{name} must be set (a number of tokens)")
    mean, stdev, low, high = float(values["mean"]), float(values["stdev"]), int(values["min"]), values["max"]
    high = None if high is None else int(high)
    if low < 1:
        raise JobSkipped(f"{key}.min must be at least 1 token, got {low}")
    if high is not None and low > high:
        raise JobSkipped(f"{key}.min={low} is above {key}.max={high}; make min <= max")
    if stdev < 0:
        raise JobSkipped(f"{key}.stdev must not be negative, got {stdev:g}")
    if mean < low or (high is not None and mean > high):
        bounds = f"[{low}, {high if high is not None else 'no max'}]"
        raise JobSkipped(f"{key}.mean={mean:g} is outside {key}.min..max {bounds}; move the mean or the bounds")
    return LengthDistribution(key, distribution, mean, stdev, low, high)
