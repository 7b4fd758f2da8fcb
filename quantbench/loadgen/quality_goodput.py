"""Quality-adjusted goodput of a load level: its goodput, counted only where the served model's
fidelity meets the limits (serve.fidelity_min_top1, serve.fidelity_max_kld).

A level's goodput is its requests per second that meet serve.slo (quantbench/loadgen/metrics.py);
without an SLO, every successful request counts (its request throughput), and the row says which
(`quality_goodput_basis`). The fidelity that applies to a level is its own, measured beside it under
load, else the job's measurement at no load (`fidelity_measured_at`). Where it meets every limit
given, the level's quality goodput is that basis; where it misses one, 0. Without a fidelity limit,
or without a fidelity measurement, it is null.
"""

from __future__ import annotations

from typing import Any

# serve.fidelity_min_top1 is in percent, as top1_agree; a value in (0, 1] is almost surely a fraction.
FRACTION_LIKE_TOP1 = 1.0


def top1_limit_problem(value: float | None, name: str) -> str | None:
    """Why a top-1 agreement limit is not a percentage, or None."""
    if value is None:
        return None
    if not 0 <= value <= 100:
        return f"{name}={value:g} is not a percentage; give top-1 agreement in percent (0-100), as top1_agree"
    if 0 < value <= FRACTION_LIKE_TOP1:
        return (
            f"{name}={value:g} looks like a fraction; top-1 agreement is in percent (0-100), as top1_agree: "
            f"give {value * 100:g}"
        )
    return None


def fidelity_misses(fidelity: dict[str, Any], min_top1: float | None, max_kld: float | None) -> list[str]:
    """What a level's served fidelity (served_top1_agree in %, served_kld_mean in nats) misses."""
    missed = []
    top1, kld = fidelity.get("served_top1_agree"), fidelity.get("served_kld_mean")
    if min_top1 is not None and (top1 is None or top1 < min_top1):
        missed.append(f"served top-1 agreement {'not measured' if top1 is None else f'{top1:.1f} %'} < {min_top1:g} %")
    if max_kld is not None and (kld is None or kld > max_kld):
        missed.append(f"served KL divergence {'not measured' if kld is None else f'{kld:.4g}'} > {max_kld:g} nats")
    return missed


def quality_goodput_columns(
    level: dict[str, Any], fidelity: dict[str, Any] | None, min_top1: float | None, max_kld: float | None
) -> dict[str, Any]:
    """`quality_goodput_per_s`, its basis and whether the level's fidelity meets the limits."""
    with_slo = level.get("goodput_per_s") is not None
    basis = "goodput_per_s (serve.slo)" if with_slo else "request_throughput_per_s (no serve.slo)"
    if (min_top1 is None and max_kld is None) or not fidelity:
        return {"quality_goodput_per_s": None, "quality_goodput_basis": None, "fidelity_meets_limits": None}
    missed = fidelity_misses(fidelity, min_top1, max_kld)
    rate = level["goodput_per_s"] if with_slo else level.get("request_throughput_per_s")
    return {
        "quality_goodput_per_s": 0.0 if missed else rate,
        "quality_goodput_basis": basis,
        "fidelity_meets_limits": not missed,
        "fidelity_misses": "; ".join(missed) or None,
    }


def between_levels(lower: dict[str, Any], upper: dict[str, Any], share: float) -> dict[str, Any]:
    """The fidelity columns of a load between two measured levels (recommend --users): not
    interpolated, the worse of the two applies (the lower top-1 agreement, the higher KL divergence);
    the quality goodput is interpolated where both levels meet the limits, else 0 (null where either
    has none)."""

    def worse(column: str, pick) -> Any:
        values = [row.get(column) for row in (lower, upper) if row.get(column) is not None]
        return pick(values) if values else None

    a, b = lower.get("quality_goodput_per_s"), upper.get("quality_goodput_per_s")
    both_meet = lower.get("fidelity_meets_limits") and upper.get("fidelity_meets_limits")
    goodput = None if a is None or b is None else (a + share * (b - a) if both_meet else 0.0)
    return {
        "served_top1_agree": worse("served_top1_agree", min),
        "served_kld_mean": worse("served_kld_mean", max),
        "fidelity_measured_at": "the worse of the two levels around it",
        "fidelity_meets_limits": None if goodput is None else bool(both_meet),
        "quality_goodput_per_s": goodput,
    }
