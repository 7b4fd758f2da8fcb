"""A job's result on disk: `result.json` and `iterations.parquet`, always written atomically.

A reader (the collector, a resumed sweep) sees either the previous file or the complete new
one, never half a file: each is written to a temporary sibling, flushed, then renamed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
ITERATIONS_FILE = "iterations.parquet"
SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")


@dataclass
class JobResult:
    status: str
    reason: str | None
    identity: dict[str, Any]
    config: dict[str, Any]
    config_hash: str
    environment: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    sample_output: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return _finite(asdict(self))


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    return Path(temporary)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    temporary = _atomic_target(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(Path(path), (json.dumps(_finite(data), indent=2, default=str) + "\n").encode())


def write_parquet_atomic(path: Path, frame: Any) -> None:
    """Write a polars DataFrame as parquet (or CSV when the name ends in .csv) atomically."""
    path = Path(path)
    temporary = _atomic_target(path)
    try:
        if path.suffix == ".csv":
            frame.write_csv(temporary)
        else:
            frame.write_parquet(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_result(job_dir: Path, result: JobResult) -> Path:
    path = Path(job_dir) / RESULT_FILE
    write_json_atomic(path, result.to_json())
    return path


def read_result(path: Path) -> dict[str, Any]:
    with open(path) as handle:
        return json.load(handle)
