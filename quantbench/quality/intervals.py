"""Uncertainty of quality numbers.

- Accuracy: the Wilson score interval of a binomial proportion (scipy), which keeps its coverage
  near 0 % and 100 % and for small n, where the normal approximation does not.
- A difference of two accuracies on the same questions: Newcombe's paired hybrid score interval.
- Means over text tokens (negative log-likelihood, KL divergence): neighbouring tokens of one
  window share their context, so tokens are not independent draws. The windows are: the mean is a
  ratio of per-window sums to per-window token counts, and its standard error is the
  cluster-robust (ratio-estimator) one over windows, with a t quantile on (windows - 1) degrees
  of freedom. With one window there is no interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class MeanInterval:
    mean: float
    stderr: float  # nan with fewer than two windows
    low: float
    high: float


def wilson_interval(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """The Wilson interval of successes/trials, as fractions; (nan, nan) without trials."""
    if trials == 0:
        return math.nan, math.nan
    interval = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def clustered_mean_interval(sums: Sequence[float], counts: Sequence[int], confidence: float) -> MeanInterval:
    """The per-token mean sum(sums)/sum(counts) with a t interval that treats windows as the units."""
    sums_array = np.asarray(sums, dtype=np.float64)
    counts_array = np.asarray(counts, dtype=np.float64)
    if counts_array.sum() <= 0:
        raise ValueError("no tokens were scored; the text is shorter than two tokens or every window is empty")
    mean = float(sums_array.sum() / counts_array.sum())
    windows = len(sums_array)
    if windows < 2:
        return MeanInterval(mean, math.nan, math.nan, math.nan)
    # Var(ratio) ~ sum((s_w - mean * n_w)^2) / (W (W - 1) nbar^2): the linearised ratio estimator.
    residuals = sums_array - mean * counts_array
    mean_count = counts_array.mean()
    stderr = float(math.sqrt((residuals**2).sum() / (windows * (windows - 1))) / mean_count)
    half_width = float(stats.t.ppf(0.5 + confidence / 2, df=windows - 1)) * stderr
    return MeanInterval(mean, stderr, mean - half_width, mean + half_width)


def paired_difference_interval(
    only_candidate: int, only_baseline: int, both: int, neither: int, confidence: float
) -> tuple[float, float]:
    """Interval of the difference of two paired proportions (candidate - baseline), as fractions.

    Newcombe's hybrid score interval for paired data (Stat. Med. 1998;17:2635, method 10): each
    accuracy's Wilson interval, combined with the phi correlation of the pairs, so agreement
    between the two narrows it the way McNemar's test does. (nan, nan) without questions.
    """
    n = only_candidate + only_baseline + both + neither
    if n == 0:
        return math.nan, math.nan
    candidate, baseline = (both + only_candidate) / n, (both + only_baseline) / n
    low_c, high_c = wilson_interval(both + only_candidate, n, confidence)
    low_b, high_b = wilson_interval(both + only_baseline, n, confidence)
    margins = (both + only_candidate) * (neither + only_baseline) * (both + only_baseline) * (neither + only_candidate)
    # phi of the 2x2 table, its positive part reduced by n/2 (Newcombe's correction, as in Altman
    # et al., Statistics with Confidence, 2000, p. 52).
    association = both * neither - only_candidate * only_baseline
    association = association - n / 2 if association > n / 2 else min(association, 0)
    phi = association / math.sqrt(margins) if margins > 0 else 0.0
    difference = candidate - baseline
    below = (candidate - low_c) ** 2 - 2 * phi * (candidate - low_c) * (high_b - baseline) + (high_b - baseline) ** 2
    above = (high_c - candidate) ** 2 - 2 * phi * (high_c - candidate) * (baseline - low_b) + (baseline - low_b) ** 2
    return difference - math.sqrt(max(below, 0.0)), difference + math.sqrt(max(above, 0.0))
