"""Summary rows of a job: one per load level for a serving job, one otherwise.

The collector calls `scenario_rows` on each job's flat row: a serving job's result.json holds one
entry per level under metrics["levels"]; each becomes a row carrying the job's identity and
job-level facts plus that level's statistics (its `concurrency` or `request_rate` tells them
apart). Every row, offline ones included, names its `scenario` and `engine`.
"""

from __future__ import annotations

from typing import Any

from quantbench.engines.base import AUTO, DEFAULT_ENGINE


def _engine_of(config: dict[str, Any]) -> str:
    name = (config.get("engine") or {}).get("name") or AUTO
    if name != AUTO:
        return str(name)
    return str((config.get("precision") or {}).get("engine") or DEFAULT_ENGINE)


def scenario_rows(data: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """`row` (the job's flat row) as the summary rows of its scenario."""
    config = data.get("config") or {}
    metrics = data.get("metrics") or {}
    row = {
        **row,
        "scenario": metrics.get("scenario") or (config.get("scenario") or {}).get("name") or "offline",
        "engine": metrics.get("engine") or _engine_of(config),
    }
    levels = metrics.get("levels")
    if not isinstance(levels, list) or not levels:
        return [row]
    scalar = (bool, int, float, str)
    return [
        {**row, **{key: value for key, value in level.items() if value is None or isinstance(value, scalar)}}
        for level in levels
    ]
