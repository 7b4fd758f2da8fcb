"""A precision against the reference precision on the same tokens: the paired statistics of
llama.cpp's KL-divergence report (tools/perplexity, `--kl-divergence`).

Per scored token t, with lq_t and lr_t the log-probabilities of the correct next token under this
precision and under the reference (stored in the reference cache):

- ln(PPL_q / PPL_ref) = mean_t (lr_t - lq_t). Its standard error comes from the per-window sums of
  the differences (windows as units, intervals.py), which is sqrt(SE_q^2 + SE_ref^2 - 2 Cov): the
  two perplexities are measured on the same tokens, so their errors largely cancel and the
  paired interval is much narrower than two independent ones would suggest.
  `ppl_ratio` = exp(mean), `ppl_ratio_low/high` = exp(mean -/+ t * SE).
- delta p_t = exp(lq_t) - exp(lr_t): mean (with its windows-as-units interval), RMS and percentiles.

Against itself (the reference job) lq_t == lr_t bit for bit, so ppl_ratio is exactly 1 and every
delta p exactly 0.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from quantbench.quality.intervals import MeanInterval, clustered_mean_interval

# The percentiles of delta p that llama.cpp prints (besides min and max).
DELTA_P_PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)


def paired_log_ratio(
    candidate_nll_sums: Sequence[float], reference_nll_sums: Sequence[float], counts: Sequence[int], confidence: float
) -> MeanInterval:
    """Mean of ln(PPL_q / PPL_ref) over tokens and its interval, windows as units, from each window's
    summed negative log-likelihood under both (the same tokens, so the differences are paired)."""
    differences = np.asarray(candidate_nll_sums, dtype=np.float64) - np.asarray(reference_nll_sums, dtype=np.float64)
    return clustered_mean_interval(differences, counts, confidence)


class PairedAccumulator:
    """Collects, window by window, what the paired statistics need: NLL sums and delta p per token."""

    def __init__(self) -> None:
        self.candidate_nll_sums: list[float] = []
        self.reference_nll_sums: list[float] = []
        self.delta_p: list[np.ndarray] = []

    def add(self, reference_target_log_prob: Any, candidate_target_log_prob: Any) -> None:
        """One window: log-probabilities [n] of its scored tokens' correct next tokens under both."""
        reference = reference_target_log_prob.double().cpu().numpy()
        candidate = candidate_target_log_prob.double().cpu().numpy()
        self.reference_nll_sums.append(float(-reference.sum()))
        self.candidate_nll_sums.append(float(-candidate.sum()))
        self.delta_p.append(np.exp(candidate) - np.exp(reference))

    def metrics(self, *, confidence: float) -> dict[str, Any]:
        counts = [len(window) for window in self.delta_p]
        log_ratio = paired_log_ratio(self.candidate_nll_sums, self.reference_nll_sums, counts, confidence)
        delta_p_mean = clustered_mean_interval([float(window.sum()) for window in self.delta_p], counts, confidence)
        every_token = np.concatenate(self.delta_p)
        percentiles = np.percentile(every_token, DELTA_P_PERCENTILES)
        return {
            "ppl_ratio": math.exp(log_ratio.mean),
            "ppl_ratio_low": math.exp(log_ratio.low),
            "ppl_ratio_high": math.exp(log_ratio.high),
            "ln_ppl_ratio_mean": log_ratio.mean,
            "ln_ppl_ratio_stderr": log_ratio.stderr,
            "delta_p_mean": delta_p_mean.mean,
            "delta_p_mean_ci_low": delta_p_mean.low,
            "delta_p_mean_ci_high": delta_p_mean.high,
            "delta_p_rms": float(math.sqrt(np.mean(every_token**2))),
            **{f"delta_p_p{q}": float(value) for q, value in zip(DELTA_P_PERCENTILES, percentiles)},
            "delta_p_min": float(every_token.min()),
            "delta_p_max": float(every_token.max()),
            "paired_n_tokens": int(every_token.size),
            "paired_n_windows": len(counts),
        }
