"""Files written atomically: a reader (the collector, a resumed sweep, a report) sees either the
previous file or the complete new one, never half a file. Each is written to a temporary sibling,
flushed, then renamed over the target.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def json_ready(value: Any) -> Any:
    """JSON has no NaN or infinity: they are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    return Path(temporary)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
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
    write_bytes_atomic(Path(path), (json.dumps(json_ready(data), indent=2, default=str) + "\n").encode())


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
