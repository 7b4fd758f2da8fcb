"""The `serve` node: the load levels of `scenario=serve` and the service-level objectives they are
judged by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from quantbench.config.schema.serve_fidelity import ServeFidelityConfig


@dataclass
class SloConfig:
    """Service-level objectives (vLLM's goodput): a request meets them when it succeeded and every
    objective given here holds; null objectives are not checked."""

    ttft_ms: Optional[float] = None
    tpot_ms: Optional[float] = None
    e2e_ms: Optional[float] = None


@dataclass
class ServeConfig:
    """Load levels of `scenario=serve`: closed loop (concurrency) or open loop (request_rate)."""

    # Closed loop: simulated users, each sending its next request when its previous one ends.
    concurrency: List[int] = field(default_factory=lambda: [1])
    # Open loop: requests per second, seeded Poisson arrivals. Exclusive with a concurrency list
    # other than the default [1].
    request_rate: List[float] = field(default_factory=list)
    # A level ends after this many requests, or after duration_s seconds of sending, whichever
    # comes first (null: that limit is off; at least one must be set).
    requests_per_level: Optional[int] = 64
    duration_s: Optional[float] = None
    warmup_requests: int = 2  # per level, before its measured requests (at least one per user)
    startup_timeout_s: float = 600.0  # from starting the server until its health endpoint answers
    request_timeout_s: float = 600.0  # one request, from sending until its last chunk
    slo: SloConfig = field(default_factory=SloConfig)
    # The served model's fidelity to the reference precision, through the serving API (docs/serving.md).
    fidelity: ServeFidelityConfig = field(default_factory=ServeFidelityConfig)
    # Quality-adjusted goodput: a level counts its goodput (its request throughput without serve.slo)
    # only where its served fidelity meets these: top-1 agreement in percent (0-100, as top1_agree),
    # KL divergence in nats (the served estimate); null: not checked.
    fidelity_min_top1: Optional[float] = None
    fidelity_max_kld: Optional[float] = None
