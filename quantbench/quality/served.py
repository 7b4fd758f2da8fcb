"""Fidelity of a served model from the top-k log-probabilities its server returns.

A server returns, for each scored token, the log-probabilities of its k most probable next tokens
(vLLM adds the actual token's), not its whole distribution Q. The reference P is kept as its top K
log-probabilities and the log of the remaining mass (quantbench/quality/fidelity.py). Both are known
token by token only on S = (the reference's top K) ∩ (the tokens the server returned). So KL(P || Q)
is taken over the partition {each token of S} + {one bucket holding everything else}:

    P(bucket) = the reference's remaining mass + its top-K tokens outside S
    Q(bucket) = 1 - (the server's returned mass) + its returned tokens outside S

That is the exact KL divergence of a coarsening of P and Q, hence a lower bound of the full one
(merging outcomes never increases KL), and of the offline scorer's `kl_divergence` (top K + rest: S
is within the reference's top K). Where the server's k tokens hold the reference's K (k >= K and the
two rank alike), S is the reference's top K and the value equals the offline one on the same logits,
up to the rounding of float32 probabilities (0.05 % on SmolLM2): docs/results/served_fidelity.md measures both
against the full-vocabulary KL. The server's returned mass can round to a little over 1 (its
float32 probabilities, their logarithms printed in decimal): Q(bucket) is floored at
Q_BUCKET_FLOOR, below what those probabilities resolve.

Top-1 agreement: the server's most probable token is the reference's most probable token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from quantbench.quality.fidelity import FidelityAccumulator, ReferenceDistribution

Q_BUCKET_FLOOR = 1e-6
# What the served metrics are called in a result, from FidelityAccumulator's names.
SERVED_NAMES = {
    "kld_mean": "served_kld_mean",
    "kld_mean_ci_low": "served_kld_mean_ci_low",
    "kld_mean_ci_high": "served_kld_mean_ci_high",
    "kld_median": "served_kld_median",
    "kld_p90": "served_kld_p90",
    "kld_p99": "served_kld_p99",
    "kld_max": "served_kld_max",
    "top1_agree": "served_top1_agree",
    "top1_agree_ci_low": "served_top1_agree_ci_low",
    "top1_agree_ci_high": "served_top1_agree_ci_high",
    "kld_n_tokens": "served_fidelity_tokens",
}

TopK = Sequence[tuple[int, float]]  # (token id, log-probability) as a server returned them


@dataclass(frozen=True)
class ServedTopK:
    """The server's top-k per scored token: ids and log-probabilities, padded with -1 / -inf."""

    indices: np.ndarray  # int64 [tokens, k]
    log_probs: np.ndarray  # float64 [tokens, k]

    @classmethod
    def from_rows(cls, rows: Sequence[TopK]) -> ServedTopK:
        width = max((len(row) for row in rows), default=0)
        indices = np.full((len(rows), max(width, 1)), -1, dtype=np.int64)
        log_probs = np.full((len(rows), max(width, 1)), -np.inf, dtype=np.float64)
        for position, row in enumerate(rows):
            if not row:
                raise ValueError(f"the server returned no log-probabilities for scored token {position}")
            ids, values = zip(*row)
            indices[position, : len(row)] = ids
            log_probs[position, : len(row)] = values
        return cls(indices, log_probs)

    @property
    def n_tokens(self) -> int:
        return int(self.indices.shape[0])

    def returned_k(self) -> tuple[int, int]:
        """(fewest, most) tokens returned for one scored token."""
        counts = (self.indices >= 0).sum(axis=1)
        return int(counts.min()), int(counts.max())

    def top1(self) -> np.ndarray:
        """The server's most probable token per scored token (whatever order it listed them in)."""
        return self.indices[np.arange(self.n_tokens), self.log_probs.argmax(axis=1)]

    def returned_mass(self) -> np.ndarray:
        return np.exp(self.log_probs).sum(axis=1)


def _reference_numpy(reference: ReferenceDistribution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(reference.top_indices.cpu().numpy(), dtype=np.int64),
        np.asarray(reference.top_log_probs.cpu().numpy(), dtype=np.float64),
        np.asarray(reference.rest_log_prob.cpu().numpy(), dtype=np.float64),
    )


def served_kl_divergence(reference: ReferenceDistribution, served: ServedTopK) -> np.ndarray:
    """KL(P_reference || Q_served) per scored token over S + one bucket (module docstring), >= 0."""
    if reference.n_tokens != served.n_tokens:
        raise ValueError(f"{reference.n_tokens} reference rows but {served.n_tokens} served ones")
    ref_ids, ref_log_p, ref_rest = _reference_numpy(reference)
    # [tokens, K, k]: which returned token each reference token is (a token appears once in each).
    same = (ref_ids[:, :, None] == served.indices[:, None, :]) & (served.indices[:, None, :] >= 0)
    in_both = same.any(axis=2)  # [tokens, K]: the reference's tokens in S
    served_q = np.exp(served.log_probs)
    q_of_ref = np.where(same, served_q[:, None, :], 0.0).sum(axis=2)  # Q of each reference token in S
    p = np.exp(ref_log_p)
    log_q_of_ref = np.log(np.where(in_both, q_of_ref, 1.0))
    s_terms = np.where(in_both, p * (ref_log_p - log_q_of_ref), 0.0).sum(axis=1)
    p_bucket = np.exp(ref_rest) + np.where(in_both, 0.0, p).sum(axis=1)
    q_in_s = np.where(in_both, q_of_ref, 0.0).sum(axis=1)
    returned = served_q.sum(axis=1)
    q_bucket = np.maximum(np.maximum(1.0 - returned, 0.0) + (returned - q_in_s), Q_BUCKET_FLOOR)
    # 0 * log(0 / q) is 0: a reference with all of its mass in S has no bucket term.
    safe_p_bucket = np.where(p_bucket > 0, p_bucket, 1.0)
    bucket_terms = np.where(p_bucket > 0, p_bucket * (np.log(safe_p_bucket) - np.log(q_bucket)), 0.0)
    # Rounding (float32 reference, decimal log-probabilities) can leave -1e-9 where the value is 0.
    return np.maximum(s_terms + bucket_terms, 0.0)


def top1_matches(reference: ReferenceDistribution, served: ServedTopK) -> np.ndarray:
    return served.top1() == reference.top_indices[:, 0].cpu().numpy()


def served_fidelity_metrics(
    windows: Sequence[tuple[ReferenceDistribution, ServedTopK]], confidence: float
) -> dict[str, Any]:
    """The offline scorer's fidelity statistics (FidelityAccumulator: windows as the clusters of the
    KL interval, Wilson interval of top-1 agreement in percent), under their served_ names, with the
    server's returned mass (how much of Q the top k held, on average)."""
    accumulator = FidelityAccumulator()
    masses = []
    for reference, served in windows:
        if served.n_tokens == 0:
            continue
        accumulator.add_scored(served_kl_divergence(reference, served), top1_matches(reference, served))
        masses.append(served.returned_mass())
    if accumulator.n_tokens == 0:
        raise ValueError("no token was scored through the server")
    metrics = accumulator.metrics(confidence=confidence)
    return {SERVED_NAMES[name]: value for name, value in metrics.items()} | {
        "served_fidelity_returned_mass": float(np.concatenate(masses).mean())
    }
