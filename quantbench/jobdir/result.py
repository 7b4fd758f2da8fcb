"""A job's outcome on disk: `result.json` (JobResult) written, read back and upgraded from older
schema versions on read, and the traceback of a job that failed.

`result.json` carries `schema_version` (SCHEMA_VERSION). Reading checks it: a version newer than
this quantbench knows, or older than it can upgrade, is an `UnreadableResult` with a one-line
reason (the collector shows it in a `failed` row, a resumed sweep re-runs the job). An older
readable one is upgraded on read (`JobResult.from_json`): version 1 named the medians
`ttft_ms`/`tpot_ms` and the price `price_per_hour`; version 2 named the offline sample counts
`<metric>_n_samples` (`latency_n_samples`), where serving levels wrote `n_<metric>_samples`;
every version's config keys are renamed by `quantbench.config.schema.RENAMED_KEYS`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantbench.atomic import json_ready, write_json_atomic
from quantbench.errors import UnreadableResult
from quantbench.jobdir.files import RESULT_FILE, TRACEBACK_FILE
from quantbench.jobdir.identity import renamed_config

SCHEMA_VERSION = 3
OLDEST_READABLE_SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")
# Metrics renamed by each schema version: the upgrade from the version before renames them on read.
RENAMED_METRICS: dict[int, dict[str, str]] = {
    2: {"ttft_ms": "ttft_p50_ms", "tpot_ms": "tpot_p50_ms", "price_per_hour": "price_per_hour_usd"},
    # One name for a percentile's sample count, offline and serving (measure/percentiles.n_samples_column).
    3: {
        "latency_n_samples": "n_latency_samples",
        "ttft_n_samples": "n_ttft_samples",
        "tpot_n_samples": "n_tpot_samples",
    },
}


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
        return json_ready(asdict(self))

    @classmethod
    def from_json(cls, data: Any, owned: bool = False) -> JobResult:
        """A result.json's contents, upgraded to this schema version; UnreadableResult otherwise.
        `owned`: `data` is the caller's to give away (just parsed), so it is upgraded in place."""
        if not isinstance(data, dict):
            raise UnreadableResult(f"{RESULT_FILE} holds a JSON {type(data).__name__}, not an object")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise UnreadableResult(f"{RESULT_FILE} has no integer schema_version (found {version!r}); re-run the job")
        if version > SCHEMA_VERSION:
            raise UnreadableResult(
                f"{RESULT_FILE} has schema version {version}, newer than this quantbench reads "
                f"({OLDEST_READABLE_SCHEMA_VERSION} to {SCHEMA_VERSION}); read it with a newer quantbench"
            )
        if version < OLDEST_READABLE_SCHEMA_VERSION:
            raise UnreadableResult(
                f"{RESULT_FILE} has schema version {version}, older than this quantbench reads "
                f"({OLDEST_READABLE_SCHEMA_VERSION} to {SCHEMA_VERSION}); re-run the job"
            )
        data = data if owned else copy.deepcopy(data)
        for upgraded_to in range(version + 1, SCHEMA_VERSION + 1):
            data["metrics"] = _renamed(data.get("metrics") or {}, RENAMED_METRICS.get(upgraded_to, {}))
        data["schema_version"] = SCHEMA_VERSION
        data["config"] = renamed_config(data.get("config") or {}, in_place=True)  # data is a copy, or owned
        missing = [name for name in ("status", "identity", "config_hash") if name not in data]
        if missing:
            raise UnreadableResult(f"{RESULT_FILE} lacks {', '.join(missing)}; re-run the job")
        if data["status"] not in STATUSES:
            raise UnreadableResult(f"{RESULT_FILE} has status {data['status']!r}, not one of {', '.join(STATUSES)}")
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


def _renamed(mapping: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """`mapping` with each key of `renames` under its new name, unless that name is taken already."""
    renamed = {}
    for key, value in mapping.items():
        new = renames.get(key)
        renamed[new if new and new not in mapping else key] = value
    return renamed


def write_result(job_dir: Path, result: JobResult) -> Path:
    path = Path(job_dir) / RESULT_FILE
    write_json_atomic(path, result.to_json())
    return path


def has_result(job_dir: Path) -> bool:
    return (Path(job_dir) / RESULT_FILE).is_file()


def read_result(job_dir: Path) -> JobResult:
    """The job's result, upgraded to this schema version; UnreadableResult (one line) otherwise."""
    path = Path(job_dir) / RESULT_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UnreadableResult(f"no {RESULT_FILE} in {path.parent}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UnreadableResult(f"unreadable {RESULT_FILE}: {error}") from None
    return JobResult.from_json(data, owned=True)


def write_traceback(job_dir: Path, text: str) -> None:
    (Path(job_dir) / TRACEBACK_FILE).write_text(text)


def last_traceback_line(job_dir: Path) -> str | None:
    path = Path(job_dir) / TRACEBACK_FILE
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else None
