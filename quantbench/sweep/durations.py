"""How long jobs took, kept in the quantbench cache, so that the next sweep can say what it will cost.

`<cache_dir>/job-durations/<key hash>.jsonl` holds one line per job that finished `ok`: its key, its
wall time in seconds (from the sweep's side: what a sweep waits for, start-up and writing included)
and when it finished. A line is one small `write` to a file opened for appending, so jobs finishing
side by side never interleave within a line; past `REWRITE_AFTER_LINES` lines the file is rewritten
atomically with its last `KEPT_RECORDS`, so the history stays small however many sweeps run.
A lost line (two rewrites at once) only makes an estimate less informed.

The key is what decides most of a job's duration and can be read from a job's overrides without
composing its config (`duration_key`): the model, precision, hardware, scenario, bench, engine and
dataset options, the quality passes and the batch. Settings inside an option (bench.max_seconds=60)
are not in it: the estimate is the median of the recent runs of that key.
"""

from __future__ import annotations

import json
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from quantbench.atomic import write_bytes_atomic
from quantbench.cache import stable_hash

DURATIONS_DIR = "job-durations"
KEY_GROUPS = ("model", "precision", "hardware", "scenario", "bench", "engine", "dataset")
KEY_VALUES = ("quality", "batch")  # a list-valued group (absent from Hydra's choices) and a value
KEPT_RECORDS = 20
REWRITE_AFTER_LINES = 2 * KEPT_RECORDS


def duration_key(choices: Mapping[str, Any], overrides: Sequence[str], batch: Any) -> dict[str, str]:
    """The key of a job: its group choices (Hydra's `runtime.choices` of the sweep or the job), with
    what its overrides choose instead, and its batch. The same for the sweep planning it and the job."""
    key = {group: str(choices[group]) for group in KEY_GROUPS if choices.get(group) is not None}
    key.update(quality="", batch=str(batch))
    for item in overrides:
        name, _, value = item.partition("=")
        name = name.lstrip("+~")
        if name in KEY_GROUPS or name in KEY_VALUES:
            key[name] = value
    return key


def _history_file(cache_dir: str | os.PathLike[str], key: Mapping[str, str]) -> Path:
    return Path(cache_dir).expanduser() / DURATIONS_DIR / f"{stable_hash(dict(key))}.jsonl"


def record_duration(cache_dir: str | os.PathLike[str], key: Mapping[str, str], duration_s: float) -> None:
    path = _history_file(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    line = json.dumps({"key": dict(key), "duration_s": round(duration_s, 3), "finished_at": finished_at}) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
    lines = path.read_bytes().splitlines(keepends=True)
    if len(lines) > REWRITE_AFTER_LINES:
        write_bytes_atomic(path, b"".join(lines[-KEPT_RECORDS:]))


def estimated_duration_s(cache_dir: str | os.PathLike[str], key: Mapping[str, str]) -> float | None:
    """The median of the recent durations of `key`, or None when the cache has none."""
    try:
        lines = _history_file(cache_dir, key).read_text().splitlines()
    except OSError:
        return None
    durations = []
    for line in lines[-KEPT_RECORDS:]:
        try:
            durations.append(float(json.loads(line)["duration_s"]))
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line (a crash while appending) is skipped, not fatal
    return statistics.median(durations) if durations else None
