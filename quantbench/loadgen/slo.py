"""Whether a load level meets the service-level objectives: the one judgement the analysis' highest
load under the SLO (quantbench.analysis.serving) and the job's own search for it
(`serve.profile=slo-search`, quantbench.loadgen.profiles) both use.

A level meets `serve.slo` when the p95 of each limited quantity (TTFT, TPOT, E2E) is within its
limit, at most 5 % of its requests failed, and it was not stopped early as over-saturated (its
queue kept growing: it cannot serve that load steadily, whatever the p95 of what it finished).
"""

from __future__ import annotations

from typing import Any, Mapping

SLO_PERCENTILE = 95
MAX_FAILED_SHARE = 1 - SLO_PERCENTILE / 100  # more failed requests than this and a level misses the SLO
# serve.slo key -> (the level's column judged against it, its name in sentences)
SLO_OBJECTIVES = {
    "ttft_ms": ("ttft_p95_ms", "TTFT p95"),
    "tpot_ms": ("tpot_p95_ms", "TPOT p95"),
    "e2e_ms": ("e2e_p95_ms", "E2E p95"),
}


def slo_limits(slo: Mapping[str, Any] | None) -> dict[str, float]:
    """The objectives `serve.slo` sets (null ones are not checked)."""
    return {key: float(value) for key, value in (slo or {}).items() if key in SLO_OBJECTIVES and value is not None}


def describe_limits(limits: Mapping[str, float]) -> str:
    """'E2E p95 ≤ 2000 ms, TTFT p95 ≤ 500 ms'."""
    return ", ".join(f"{SLO_OBJECTIVES[key][1]} ≤ {limit:g} ms" for key, limit in limits.items())


def misses(row: Mapping[str, Any], limits: Mapping[str, float]) -> list[str]:
    """What a level's summary row breaks: each limited p95 above its limit, too many failed requests,
    an over-saturated level. Empty: it meets the SLO."""
    broken = []
    for key, limit in limits.items():
        column, name = SLO_OBJECTIVES[key]
        value = row.get(column)
        if value is None or value > limit:
            broken.append(f"{name} {'not measured' if value is None else f'{value:.0f} ms'} > {limit:g} ms")
    if row.get("n_requests") and (row.get("n_failed_requests") or 0) / row["n_requests"] > MAX_FAILED_SHARE:
        broken.append(f"{row['n_failed_requests']}/{row['n_requests']} requests failed")
    if row.get("oversaturated"):
        broken.append("over-saturated (stopped early)")
    return broken
