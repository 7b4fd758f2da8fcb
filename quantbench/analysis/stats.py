"""Statistics of one configuration against the baseline: throughput ratios and paired accuracy.

Throughput of a set of iterations is total work over total time (samples or generated tokens per
second of generation), which is how the summary defines `qps` and `tokens_per_s`, so the point
estimates here equal the ratio of the summary's columns.

- Interval: scipy's bootstrap (BCa; percentile where BCa is undefined because the resamples do
  not vary), resampling the iterations of each configuration independently.
- p-value: Welch's t-test on the log of per-iteration throughput. Logs, because timing noise is
  multiplicative and a ratio is a difference of logs; Welch, because two precisions need not
  have the same spread.
- Across batch sizes: the geometric mean of the per-batch ratios, its interval bootstrapped over
  all batches at once, and the same Welch test applied to the mean of the per-batch log
  differences (a contrast; Welch-Satterthwaite degrees of freedom). This combination is signed,
  so "faster at one batch, slower at another" cancels instead of adding up (as it would with
  Fisher's method), and it tests the geometric mean itself, so the p agrees with the interval
  beside it (Stouffer's combination of per-batch p-values weights batches differently).
- Accuracy: McNemar's exact test (a binomial test on the discordant questions), pairing each
  question's correctness under both precisions.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from quantbench.cache import stable_hash
from quantbench.config.schema import AnalysisConfig

# One sample: a 2 x n array; row 0 is the work of each iteration (samples or tokens), row 1 its
# duration in seconds.
Sample = np.ndarray


@dataclass(frozen=True)
class RatioTest:
    ratio: float  # throughput of the configuration / throughput of the baseline
    ci_low: float
    ci_high: float
    p_value: float  # two-sided
    p_faster: float  # one-sided: the configuration is faster than the baseline
    n_baseline: int
    n_candidate: int


@dataclass(frozen=True)
class PairedAccuracyTest:
    n_questions: int
    baseline_accuracy: float
    candidate_accuracy: float
    only_baseline_correct: int
    only_candidate_correct: int
    p_value: float


def make_sample(work: Sequence[float], seconds: Sequence[float]) -> Sample:
    sample = np.vstack([np.asarray(work, dtype=float), np.asarray(seconds, dtype=float)])
    if sample.shape[1] and not np.all(sample[1] > 0):
        raise ValueError("every iteration needs a positive duration; check latency_ms in iterations.parquet")
    return sample


def throughput(sample: Sample, axis: int = -1) -> np.ndarray:
    """Total work / total time along `axis`."""
    return sample[0].sum(axis=axis) / sample[1].sum(axis=axis)


def _log_rates(sample: Sample) -> np.ndarray:
    return np.log(sample[0] / sample[1])


def _geometric_mean_ratio(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Samples come as (baseline, candidate) pairs, one pair per batch size."""
    log_ratios = [
        np.log(throughput(candidate, axis) / throughput(baseline, axis))
        for baseline, candidate in zip(samples[0::2], samples[1::2])
    ]
    return np.exp(np.mean(log_ratios, axis=0))


def _bootstrap_interval(pairs: list[tuple[Sample, Sample]], settings: AnalysisConfig, key: str) -> tuple[float, float]:
    data = tuple(sample for pair in pairs for sample in pair)
    if any(sample.shape[1] < 2 for sample in data):
        return math.nan, math.nan
    # Seeded per comparison, so that one table row does not change when another row is added.
    rng = np.random.default_rng([settings.seed, int(stable_hash(key), 16)])
    interval = None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # Constant resamples make BCa undefined (NaN, with a warning): fall back to percentile.
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(
                data,
                _geometric_mean_ratio,
                n_resamples=settings.bootstrap_resamples,
                confidence_level=settings.confidence,
                method=method,
                vectorized=True,
                axis=-1,
                rng=rng,
            )
        interval = result.confidence_interval
        if np.isfinite(interval.low) and np.isfinite(interval.high):
            break
    return float(interval.low), float(interval.high)


def welch_contrast(pairs: list[tuple[Sample, Sample]]) -> tuple[float, float]:
    """(two-sided p, one-sided p that the candidate is faster) for the mean log ratio over `pairs`.

    T = sum of (mean log candidate rate - mean log baseline rate) / sqrt(sum of their variances),
    with Welch-Satterthwaite degrees of freedom over every sample. For one pair this is exactly
    Welch's t-test; for several batch sizes it tests the geometric mean ratio itself.
    """
    difference, variance, df_denominator = 0.0, 0.0, 0.0
    for baseline, candidate in pairs:
        for sign, sample in ((-1.0, baseline), (1.0, candidate)):
            logs = _log_rates(sample)
            if len(logs) < 2:
                return math.nan, math.nan
            component = float(np.var(logs, ddof=1)) / len(logs)
            difference += sign * float(np.mean(logs))
            variance += component
            df_denominator += component**2 / (len(logs) - 1)
    if variance == 0:
        # No spread at all: the t statistic is undefined; the limit is certainty either way.
        if difference == 0:
            return 1.0, 0.5
        return 0.0, 0.0 if difference > 0 else 1.0
    statistic = difference / math.sqrt(variance)
    degrees_of_freedom = variance**2 / df_denominator
    faster = float(stats.t.sf(statistic, degrees_of_freedom))
    return float(min(1.0, 2 * stats.t.sf(abs(statistic), degrees_of_freedom))), faster


def compare_throughput(baseline: Sample, candidate: Sample, settings: AnalysisConfig, key: str = "") -> RatioTest:
    """The candidate's throughput relative to the baseline's, from per-iteration samples."""
    ratio = float(throughput(candidate) / throughput(baseline))
    low, high = _bootstrap_interval([(baseline, candidate)], settings, key)
    two_sided, faster = welch_contrast([(baseline, candidate)])
    return RatioTest(ratio, low, high, two_sided, faster, baseline.shape[1], candidate.shape[1])


def compare_across_batches(pairs: list[tuple[Sample, Sample]], settings: AnalysisConfig, key: str = "") -> RatioTest:
    """Geometric mean of the per-batch ratios, its joint bootstrap interval and its p-value."""
    ratio = float(_geometric_mean_ratio(*(sample for pair in pairs for sample in pair)))
    low, high = _bootstrap_interval(pairs, settings, key)
    two_sided, faster = welch_contrast(pairs)
    return RatioTest(
        ratio,
        low,
        high,
        two_sided,
        faster,
        sum(baseline.shape[1] for baseline, _ in pairs),
        sum(candidate.shape[1] for _, candidate in pairs),
    )


def direction(test: RatioTest, alpha: float) -> str:
    """faster / slower when the difference is significant at `alpha`, otherwise no clear difference."""
    if not np.isfinite(test.p_value) or test.p_value >= alpha:
        return "no clear difference"
    return "faster" if test.ratio > 1 else "slower"


def mcnemar_exact(baseline_correct: Sequence[bool], candidate_correct: Sequence[bool]) -> PairedAccuracyTest:
    """McNemar's exact test; the two sequences are aligned question by question."""
    baseline = np.asarray(baseline_correct, dtype=bool)
    candidate = np.asarray(candidate_correct, dtype=bool)
    if baseline.shape != candidate.shape:
        raise ValueError("paired correctness needs the same questions in both; align them by question id first")
    only_baseline = int(np.sum(baseline & ~candidate))
    only_candidate = int(np.sum(candidate & ~baseline))
    discordant = only_baseline + only_candidate
    p_value = 1.0 if discordant == 0 else float(stats.binomtest(only_candidate, discordant, 0.5).pvalue)
    n = len(baseline)
    return PairedAccuracyTest(
        n,
        float(baseline.mean()) if n else math.nan,
        float(candidate.mean()) if n else math.nan,
        only_baseline,
        only_candidate,
        p_value,
    )


def compare_repeat_rates(pairs: list[tuple[Sequence[float], Sequence[float]]], settings: AnalysisConfig) -> RatioTest:
    """The candidate's throughput relative to the baseline's with the repeat as the unit.

    `pairs`: (baseline rates, candidate rates), one rate per repeat, one pair per batch size.
    The log ratio is the mean over pairs of (mean log candidate rate - mean log baseline rate);
    its variance sums var/n of every sample, divided by the number of pairs squared; Welch-
    Satterthwaite degrees of freedom; interval = exp of the t-interval. For one pair this is
    Welch's t-test on the repeats' log rates and the ratio of their geometric means. NaN
    interval and p where a configuration has fewer than two repeats.
    """
    logs = [(np.log(np.asarray(base, dtype=float)), np.log(np.asarray(cand, dtype=float))) for base, cand in pairs]
    k = len(logs)
    difference = float(np.mean([cand.mean() - base.mean() for base, cand in logs]))
    ratio = math.exp(difference)
    n_base, n_cand = sum(len(base) for base, _ in logs), sum(len(cand) for _, cand in logs)
    if any(len(sample) < 2 for pair in logs for sample in pair):
        return RatioTest(ratio, math.nan, math.nan, math.nan, math.nan, n_base, n_cand)
    components = [float(sample.var(ddof=1)) / len(sample) / k**2 for pair in logs for sample in pair]
    variance = sum(components)
    if variance == 0:
        p_two, p_faster = (1.0, 0.5) if difference == 0 else (0.0, 0.0 if difference > 0 else 1.0)
        return RatioTest(ratio, ratio, ratio, p_two, p_faster, n_base, n_cand)
    sizes = [len(sample) for pair in logs for sample in pair]
    df = variance**2 / sum(component**2 / (size - 1) for component, size in zip(components, sizes))
    half = float(stats.t.ppf(0.5 + settings.confidence / 2, df)) * math.sqrt(variance)
    statistic = difference / math.sqrt(variance)
    p_two = float(min(1.0, 2 * stats.t.sf(abs(statistic), df)))
    return RatioTest(
        ratio,
        math.exp(difference - half),
        math.exp(difference + half),
        p_two,
        float(stats.t.sf(statistic, df)),
        n_base,
        n_cand,
    )
