"""Job results as older quantbench versions wrote them: other result.json schema versions, renamed keys."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from quantbench import jobdir
from quantbench.jobdir import JobResult


def a_result(**changes) -> JobResult:
    config = {"model": {"name": "m"}, "bench": {"max_new_tokens": 8}, "batch": 1}
    fields = dict(
        status="ok",
        reason=None,
        identity={"model": "m", "precision": "fp32", "batch": 1},
        config=config,
        config_hash=jobdir.config_hash(config),
        environment={"versions": {"quantbench": "0"}},
        metrics={"tokens_per_s": 12.5, "ttft_p50_ms": 3.0, "ppl": float("nan")},
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:01:00+00:00",
        sample_output=["hi"],
    )
    return JobResult(**{**fields, **changes})


def written_by(version: int, result: JobResult, metrics: dict) -> dict:
    """`result` as a quantbench of schema `version` wrote it, with `metrics` under that version's names."""
    data = result.to_json()
    data["schema_version"] = version
    data["metrics"] = metrics
    return data


def v1_data(result: JobResult) -> dict:
    """`result` as quantbench wrote it with schema version 1: older metric and config key names."""
    data = written_by(1, result, {"ttft_ms": 3.0, "tpot_ms": 1.5, "price_per_hour": 1.2, "tokens_per_s": 12.5})
    data["config"]["hardware"] = {"name": "cpu", "price_per_hour": 1.2}
    return data


def stored_by_an_older_version(tmp_path: Path, current: dict) -> Path:
    """An ok result of `current` as written before bench.max_seconds/warmup_max_seconds existed
    and before hardware.price_per_hour became price_per_hour_usd."""
    old = copy.deepcopy(current)
    del old["bench"]["max_seconds"], old["bench"]["warmup_max_seconds"]
    old["hardware"]["price_per_hour"] = old["hardware"].pop("price_per_hour_usd")
    data = v1_data(a_result(config=old, config_hash=jobdir.config_hash(old)))
    data["config"] = old
    (tmp_path / jobdir.RESULT_FILE).write_text(json.dumps(data))
    return tmp_path
