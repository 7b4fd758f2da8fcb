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
class SearchConfig:
    """serve.profile=slo-search: the range and the precision of the search (docs/serving.md)."""

    axis: str = "concurrency"  # concurrency (closed loop, users) or request_rate (open loop, req/s)
    min: float = 1  # the lowest load probed (first)
    max: float = 64  # the highest load probed (second)
    # The search ends when the bracket (highest load meeting the SLO, lowest missing it) is at most
    # this wide; null: 1 user for concurrency, for request_rate only max_probes ends it.
    resolution: Optional[float] = None
    max_probes: int = 8  # levels at most, the minimum and the maximum included


@dataclass
class OversaturationConfig:
    """When a level counts as over-saturated (quantbench.loadgen.saturation): its TTFT, or in an
    open loop its requests in flight, rising through the level significantly and by a lot."""

    min_requests: int = 20  # requests sent after the level's first completion before it is judged
    min_duration_s: float = 5.0  # seconds of the level before it is judged
    alpha: float = 0.001  # the one-sided p-value a rise must beat (Kendall's rank correlation with send time)
    min_tau: float = 0.7  # and its strength: Kendall's τ at least this (a stable queue's busy periods are weaker)
    ttft_growth: float = 1.0  # the rise that matters: last third's median TTFT ≥ (1 + this) × the first third's
    in_flight_growth: float = 1.0  # the same for the requests in flight (open loop)
    check_interval_s: float = 0.5  # how often it is judged while the level runs


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
    # Seconds between scrapes of the server's Prometheus /metrics during a level (besides one at
    # each level's start, its measured start and the job's end); null: not scraped (docs/serving.md).
    metrics_interval_s: Optional[float] = 0.5
    # A JSON Lines trace to replay as one open-loop level, "trace" (docs/serving.md#trace-replay):
    # each line's arrival_s, input_tokens, output_tokens, optional prefix_group/prefix_tokens and
    # conversation_id. Exclusive with concurrency/request_rate lists; requests_per_level does not apply.
    trace: Optional[str] = None
    trace_speed: float = 1.0  # time scale of the replay: 2 sends the trace twice as fast
    # Which levels run: levels (the concurrency or request_rate lists above), sweep (synchronous,
    # throughput, then sweep_rates Poisson rates between their measured rates) or slo-search (the
    # highest load meeting serve.slo, by bisection: serve.search). docs/serving.md#load-profiles
    profile: str = "levels"
    sweep_rates: int = 4  # sweep: open-loop rates between the synchronous and the throughput level
    # sweep: users of the throughput level (null: serve.requests_per_level, every request at once)
    sweep_throughput_users: Optional[int] = None
    search: SearchConfig = field(default_factory=SearchConfig)
    # Stop a level early once it is over-saturated (its queue keeps growing: serve.oversaturation);
    # recorded as oversaturated and stopped_early with the reason; its requests in flight are cancelled.
    stop_oversaturated: bool = True
    oversaturation: OversaturationConfig = field(default_factory=OversaturationConfig)
    # Client processes that drive each level together (one schedule, one start time, merged records):
    # for servers that stream more chunks per second than one process reads (docs/serving.md#the-client).
    client_processes: int = 1
    # The served model's fidelity to the reference precision, through the serving API (docs/serving.md).
    fidelity: ServeFidelityConfig = field(default_factory=ServeFidelityConfig)
    # Quality-adjusted goodput: a level counts its goodput (its request throughput without serve.slo)
    # only where its served fidelity meets these: top-1 agreement in percent (0-100, as top1_agree),
    # KL divergence in nats (the served estimate); null: not checked.
    fidelity_min_top1: Optional[float] = None
    fidelity_max_kld: Optional[float] = None
