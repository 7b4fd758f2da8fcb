"""What a server's Prometheus metrics mean: one map per engine, from the engine's metric names to
the quantities quantbench reports (running and waiting requests, KV-cache usage, preemptions,
prefix-cache queries and hits, prompt and generated tokens).

Checked against the servers' sources and their real output (tests/fixtures/metrics/):

- vLLM (V1 engine; vllm/v1/metrics/loggers.py of 0.32): gauges `vllm:num_requests_running`,
  `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (a fraction, 1 = full, despite its name;
  `vllm:gpu_cache_usage_perc` in older releases); counters `vllm:num_preemptions_total`,
  `vllm:prefix_cache_queries_total` and `vllm:prefix_cache_hits_total` (tokens;
  `vllm:gpu_prefix_cache_*` in older releases), `vllm:prompt_tokens_total` (every prompt token,
  cached ones included), `vllm:generation_tokens_total`. Each carries `engine` and `model_name`
  labels: counts are summed over the engines, the KV-cache fraction averaged.
- llama-server (tools/server/server-task.cpp, `--metrics`): gauges `llamacpp:requests_processing`
  (slots busy) and `llamacpp:requests_deferred` (requests waiting for a slot); counters
  `llamacpp:prompt_tokens_total` (prompt tokens computed, cached ones excluded),
  `llamacpp:prompt_tokens_cached_total` (prompt tokens reused from a slot's cache),
  `llamacpp:tokens_predicted_total`, `llamacpp:n_decode_total`, and
  `llamacpp:n_busy_slots_per_decode`, the mean number of busy slots per decode since the start.
  This build (llama.cpp 0c1e57098) has no KV-cache usage and no preemptions (its slots own their
  cache); builds of 2024 had `llamacpp:kv_cache_usage_ratio`, read where present.
  llama-server writes values with six significant digits (`1.23457e+06`), so counters above a
  million tokens move in steps of that rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

# name -> (sum over the label sets, how many label sets): one scrape's samples, by sample name.
Totals = Mapping[str, tuple[float, int]]
Reading = Callable[[Totals], "float | None"]

GAUGE, COUNTER = "gauge", "counter"


def summed(*names: str) -> Reading:
    """The sum of these samples (over their label sets too); None unless all are present."""

    def read(totals: Totals) -> float | None:
        if not all(name in totals for name in names):
            return None
        return sum(totals[name][0] for name in names)

    return read


def averaged(name: str) -> Reading:
    """The mean over the sample's label sets (a fraction per engine)."""

    def read(totals: Totals) -> float | None:
        if name not in totals or not totals[name][1]:
            return None
        total, count = totals[name]
        return total / count

    return read


def product(first: str, second: str) -> Reading:
    def read(totals: Totals) -> float | None:
        if first not in totals or second not in totals:
            return None
        return totals[first][0] * totals[second][0]

    return read


def first_of(*readings: Reading) -> Reading:
    """The first reading that the scrape has (a newer name, then the older ones)."""

    def read(totals: Totals) -> float | None:
        for reading in readings:
            value = reading(totals)
            if value is not None:
                return value
        return None

    return read


@dataclass(frozen=True)
class Quantity:
    kind: str  # GAUGE: a value now; COUNTER: cumulative since the server started
    read: Reading


@dataclass(frozen=True)
class MetricMap:
    engine: str  # as the report names it
    prefix: str  # the prefix of every metric name of this server
    quantities: dict[str, Quantity]

    def describe(self) -> str:
        return f"{self.engine} names ({self.prefix}*)"


VLLM = MetricMap(
    "vLLM",
    "vllm:",
    {
        "requests_running": Quantity(GAUGE, summed("vllm:num_requests_running")),
        "requests_waiting": Quantity(GAUGE, summed("vllm:num_requests_waiting")),
        "kv_cache_usage": Quantity(
            GAUGE, first_of(averaged("vllm:kv_cache_usage_perc"), averaged("vllm:gpu_cache_usage_perc"))
        ),
        "preemptions": Quantity(COUNTER, summed("vllm:num_preemptions_total")),
        "prefix_cache_queries": Quantity(
            COUNTER, first_of(summed("vllm:prefix_cache_queries_total"), summed("vllm:gpu_prefix_cache_queries_total"))
        ),
        "prefix_cache_hits": Quantity(
            COUNTER, first_of(summed("vllm:prefix_cache_hits_total"), summed("vllm:gpu_prefix_cache_hits_total"))
        ),
        "prompt_tokens": Quantity(COUNTER, summed("vllm:prompt_tokens_total")),
        "generation_tokens": Quantity(COUNTER, summed("vllm:generation_tokens_total")),
    },
)

LLAMA_SERVER = MetricMap(
    "llama-server",
    "llamacpp:",
    {
        "requests_running": Quantity(GAUGE, summed("llamacpp:requests_processing")),
        "requests_waiting": Quantity(GAUGE, summed("llamacpp:requests_deferred")),
        "kv_cache_usage": Quantity(GAUGE, summed("llamacpp:kv_cache_usage_ratio")),
        # Every prompt token a slot took in: computed ones plus those reused from its cache.
        "prefix_cache_queries": Quantity(
            COUNTER, summed("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total")
        ),
        "prefix_cache_hits": Quantity(COUNTER, summed("llamacpp:prompt_tokens_cached_total")),
        "prompt_tokens": Quantity(
            COUNTER,
            first_of(
                summed("llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total"),
                summed("llamacpp:prompt_tokens_total"),
            ),
        ),
        "generation_tokens": Quantity(COUNTER, summed("llamacpp:tokens_predicted_total")),
        "decode_calls": Quantity(COUNTER, summed("llamacpp:n_decode_total")),
        # The server reports the mean since its start; times the decode count it is the total of busy
        # slots over all decodes, a counter whose increase over a level gives the level's own mean.
        "busy_slot_decodes": Quantity(COUNTER, product("llamacpp:n_busy_slots_per_decode", "llamacpp:n_decode_total")),
    },
)

MAPS = (VLLM, LLAMA_SERVER)


def map_for(names: list[str] | set[str]) -> MetricMap | None:
    """The map of the server whose metric names these are: the one most of them start with."""
    count, best = max(
        ((sum(name.startswith(metric_map.prefix) for name in names), metric_map) for metric_map in MAPS),
        key=lambda counted: counted[0],
    )
    return best if count else None


def known_prefixes() -> str:
    return ", ".join(f"{metric_map.prefix}* ({metric_map.engine})" for metric_map in MAPS)
