"""`serve.fidelity`: the served model's fidelity to the reference precision, measured through the
serving API (quantbench/loadgen/fidelity_probe.py, docs/serving.md "Fidelity through the server")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ServeFidelityConfig:
    """Off by default: each scored token can cost a request (llama-server), so a run is kept small."""

    enabled: bool = False
    # How the server is asked: auto (by engine: llama.cpp -> llama-server, vllm -> vllm, openai and
    # llama-cpp-python -> completions-echo, transformers -> none: `transformers serve` returns no
    # log-probabilities), or llama-server (/completion with n_probs, one scored token per request),
    # vllm (/v1/completions with prompt_logprobs, one request per window), completions-echo
    # (/v1/completions with echo and logprobs, one request per window).
    protocol: str = "auto"
    # The evaluation windows are the offline KL scorer's (quality.text, quality.context_tokens,
    # quality.stride, quality.max_tokens), the first `windows` of them (its reference cache entry is
    # the one of `scenario=offline quality=[kld] quality.limit=<windows>`); of each, the last
    # `tokens` scored tokens (those with the longest context) are scored through the server.
    windows: int = 4
    tokens: int = 32
    # Log-probabilities asked of the server per scored token. At least quality.kld.top_k (32), so
    # that the served estimate equals the offline one where the server's top k holds the
    # reference's; vLLM is started with --max-logprobs at least this.
    top_k: int = 64
    # The level measured under load (its position in the job's levels; -1: the last, the highest
    # load); null: no measurement under load.
    under_load_level: Optional[int] = -1
