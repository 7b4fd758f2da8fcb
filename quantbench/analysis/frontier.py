"""What a recommendation is made of: the limits, the Pareto frontier of the candidates, the result.

Shared by `recommend` on offline batches (quantbench/report/recommend.py) and on serving levels
(quantbench/report/recommend_serving.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True)
class Limits:
    max_memory_gb: float | None = None
    max_p95_ms: float | None = None
    max_quality_drop: float | None = None
    batch: int | None = None
    # Keep only configurations that recover at least this fraction of the baseline's quality
    # (quantbench/analysis/gate.py); None: no gate.
    quality_gate: float | None = None


@dataclass
class Recommendation:
    candidates: pl.DataFrame  # one row per configuration: label, objective, memory, p95, quality_drop, on_frontier
    best: dict[str, Any] | None
    excluded: list[tuple[str, str]]  # (configuration, why it was not chosen)
    objective: str
    memory_column: str
    quality_label: str | None  # what quality_drop measures; None without quality metrics
    notes: list[str] = field(default_factory=list)


def _dominates(a: dict[str, Any], b: dict[str, Any], objective: str, memory: str) -> bool:
    """a is at least as good as b on speed, memory and quality, and better on one of them."""

    def quality(row: dict[str, Any]) -> float:
        value = row.get("quality_drop")
        return math.inf if value is None else value  # unmeasured quality can never beat measured

    at_least = a[objective] >= b[objective] and a[memory] <= b[memory] and quality(a) <= quality(b)
    better = a[objective] > b[objective] or a[memory] < b[memory] or quality(a) < quality(b)
    return at_least and better


def pareto_frontier(rows: list[dict[str, Any]], objective: str, memory: str) -> list[bool]:
    return [not any(_dominates(other, row, objective, memory) for other in rows if other is not row) for row in rows]
