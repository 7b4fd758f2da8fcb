"""Token-level perplexity: exp of the mean negative log-likelihood of the scored tokens.

The interval is the exponential of the mean NLL's interval (windows as units, see intervals.py),
so it is asymmetric around the perplexity, as it should be. The window settings and the number of
tokens go into the result with the number: perplexities only compare at the same settings.
"""

from __future__ import annotations

import math
from typing import Any

from quantbench.quality.fidelity import target_log_probs
from quantbench.quality.intervals import clustered_mean_interval


class PerplexityAccumulator:
    def __init__(self) -> None:
        self.nll_sums: list[float] = []
        self.counts: list[int] = []

    def add(self, log_probs: Any, targets: Any) -> None:
        """log_probs [n, vocab] of the scored positions; targets [n] the tokens that came next."""
        picked = target_log_probs(log_probs, targets).double()
        self.nll_sums.append(float(-picked.sum()))
        self.counts.append(int(targets.numel()))

    def metrics(self, *, confidence: float, context_tokens: int, stride: int) -> dict[str, Any]:
        nll = clustered_mean_interval(self.nll_sums, self.counts, confidence)
        return {
            "ppl": math.exp(nll.mean),
            "ppl_ci_low": math.exp(nll.low),
            "ppl_ci_high": math.exp(nll.high),
            "ppl_nll_mean": nll.mean,
            "ppl_nll_stderr": nll.stderr,
            "ppl_context_tokens": context_tokens,
            "ppl_stride": stride,
            "ppl_n_tokens": sum(self.counts),
            "ppl_n_windows": len(self.counts),
        }
