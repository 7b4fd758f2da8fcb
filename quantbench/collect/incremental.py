"""Incremental collection: a sweep collected again reads only the result.json files that changed.

The end of every sweep, every resume and every `quantbench collect` reads all of a sweep's results;
at 10,000 jobs most of that time goes to reading results that were read before. The rows made from
each job's result.json are kept in the sweep directory (`COLLECTED_FILE`), each under its job
directory's name with the size and modification time of the result.json they came from; a job whose
result.json has the same size and time keeps its rows, any other is read again. The rows also depend
on the code that makes them, so the file records a hash of that code (`ROW_CODE`) and is ignored when
it differs. A job without a result.json is always read afresh (it may finish any moment). The file
is only a cache: deleting it costs one full collection.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from quantbench.atomic import write_bytes_atomic
from quantbench.jobdir import result_stamp

COLLECTED_FILE = ".quantbench-collected.json"
# The modules whose code turns a result.json into summary rows.
ROW_CODE = (
    "quantbench.collect.sweeps",
    "quantbench.loadgen.rows",
    "quantbench.jobdir.result",
    "quantbench.jobdir.identity",
)


@lru_cache(maxsize=1)
def _code_hash() -> str:
    digest = hashlib.sha256()
    for name in ROW_CODE:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    return digest.hexdigest()[:16]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("code") != _code_hash() or not isinstance(data.get("jobs"), dict):
        return {}
    return data["jobs"]


def rows_of_jobs(
    sweep_dir: Path, job_dirs: list[Path], read_rows: Callable[[Path], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Every job's rows (`read_rows(job_dir)`, without `job_dir`), reading only what changed since
    the last collection of `sweep_dir`."""
    path = Path(sweep_dir) / COLLECTED_FILE
    cached = _load(path)
    kept: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    changed = False
    for job_dir in job_dirs:
        name = os.path.relpath(job_dir, sweep_dir)
        stamp = result_stamp(job_dir)
        entry = cached.get(name)
        if stamp is not None and isinstance(entry, dict) and entry.get("stamp") == stamp:
            job_rows = entry["rows"]
        else:
            job_rows = read_rows(job_dir)
            changed = True
        if stamp is not None:
            kept[name] = {"stamp": stamp, "rows": job_rows}
        rows.extend({**row, "job_dir": str(job_dir)} for row in job_rows)
    if changed or len(kept) != len(cached):
        try:
            write_bytes_atomic(path, json.dumps({"code": _code_hash(), "jobs": kept}).encode())
        except OSError:
            pass  # a read-only sweep directory: collected in full each time, nothing lost
    return rows
