"""Fidelity to the reference precision: KL divergence of next-token distributions, top-1 agreement.

The reference distribution P of each scored token is kept in a compact form: its top-k
log-probabilities and the log of the remaining mass. The KL divergence KL(P || Q) to this
precision's Q is computed over the k tokens plus one "other" bucket holding the rest of both
distributions. That is the exact KL divergence of the coarsened distributions, a lower bound of
the full one (merging outcomes never increases KL) that is tight when the remaining mass is small;
the remaining mass of Q is summed from Q's own log-probabilities (logsumexp), not as 1 - top-k,
so no precision is lost to cancellation. Against itself it is exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from quantbench.quality.intervals import clustered_mean_interval, wilson_interval


@dataclass
class ReferenceDistribution:
    """Top-k of the reference's next-token distributions, one row per scored token, windows in order."""

    top_indices: Any  # LongTensor [tokens, k], most probable first
    top_log_probs: Any  # FloatTensor [tokens, k]
    rest_log_prob: Any  # DoubleTensor [tokens]: log of the probability outside the top k
    target_log_prob: Any  # FloatTensor [tokens]: log-probability of the token that came next (paired.py)

    @property
    def n_tokens(self) -> int:
        return int(self.top_indices.shape[0])

    def rows(self, start: int, stop: int) -> ReferenceDistribution:
        return ReferenceDistribution(
            self.top_indices[start:stop],
            self.top_log_probs[start:stop],
            self.rest_log_prob[start:stop],
            self.target_log_prob[start:stop],
        )

    def to(self, device: Any) -> ReferenceDistribution:
        return ReferenceDistribution(
            self.top_indices.to(device),
            self.top_log_probs.to(device),
            self.rest_log_prob.to(device),
            self.target_log_prob.to(device),
        )


def rest_log_prob(log_probs: Any, indices: Any) -> Any:
    """log of the probability mass outside `indices`, per row, in float64."""
    import torch

    masked = log_probs.double().scatter(1, indices, float("-inf"))
    return torch.logsumexp(masked, dim=-1)


def target_log_probs(log_probs: Any, targets: Any) -> Any:
    """log P(the token that came next), per row: [n, vocab] and [n] -> [n]."""
    return log_probs.gather(1, targets.view(-1, 1)).squeeze(1)


def top_k_reference(log_probs: Any, top_k: int, targets: Any) -> ReferenceDistribution:
    k = min(top_k, log_probs.shape[-1])
    top_log_probs, top_indices = log_probs.topk(k, dim=-1)
    return ReferenceDistribution(
        top_indices, top_log_probs, rest_log_prob(log_probs, top_indices), target_log_probs(log_probs, targets)
    )


def kl_divergence(reference: ReferenceDistribution, log_probs: Any) -> Any:
    """KL(P_reference || Q) per token over the reference's top k plus the rest, float64, >= 0."""
    import torch

    reference_top = reference.top_log_probs.double()
    candidate_top = log_probs.gather(1, reference.top_indices).double()
    candidate_rest = rest_log_prob(log_probs, reference.top_indices)
    top_terms = (reference_top.exp() * (reference_top - candidate_top)).sum(dim=-1)
    rest_probability = reference.rest_log_prob.exp()
    # 0 * log(0 / q) is 0: a reference that keeps all of its mass in the top k has no rest term.
    rest_terms = torch.where(
        rest_probability > 0,
        rest_probability * (reference.rest_log_prob - candidate_rest),
        torch.zeros_like(rest_probability),
    )
    # Rounding in float32 log-probs can leave -1e-9 where the true value is 0.
    return (top_terms + rest_terms).clamp_min(0.0)


class FidelityAccumulator:
    def __init__(self) -> None:
        self.token_kld: list[np.ndarray] = []
        self.top1_matches = 0
        self.n_tokens = 0

    def add(self, reference: ReferenceDistribution, log_probs: Any) -> None:
        self.add_scored(
            kl_divergence(reference, log_probs).cpu().numpy(),
            (log_probs.argmax(dim=-1) == reference.top_indices[:, 0]).cpu().numpy(),
        )

    def add_scored(self, token_kld: np.ndarray, top1_match: np.ndarray) -> None:
        """One window's per-token KL divergence and top-1 matches, however they were computed (a
        server's top-k: quantbench/quality/served.py)."""
        self.token_kld.append(np.asarray(token_kld, dtype=np.float64))
        self.top1_matches += int(np.count_nonzero(top1_match))
        self.n_tokens += len(token_kld)

    def metrics(self, *, confidence: float) -> dict[str, Any]:
        mean = clustered_mean_interval(
            [float(window.sum()) for window in self.token_kld], [len(window) for window in self.token_kld], confidence
        )
        agree_low, agree_high = wilson_interval(self.top1_matches, self.n_tokens, confidence)
        every_token = np.concatenate(self.token_kld)
        p50, p90, p99 = np.percentile(every_token, [50, 90, 99])
        return {
            "kld_mean": mean.mean,
            "kld_mean_ci_low": max(mean.low, 0.0),  # a divergence is never negative
            "kld_mean_ci_high": mean.high,
            "kld_median": float(p50),
            "kld_p90": float(p90),
            "kld_p99": float(p99),
            "kld_max": float(every_token.max()),
            "top1_agree": 100.0 * self.top1_matches / self.n_tokens,
            # Binomial (Wilson) interval over tokens, as llama.cpp's "Same top p" gives its ±; tokens of one
            # window are not independent, so it is a lower bound on the uncertainty.
            "top1_agree_ci_low": 100.0 * agree_low,
            "top1_agree_ci_high": 100.0 * agree_high,
            "kld_n_tokens": self.n_tokens,
        }
