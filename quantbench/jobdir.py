"""The job directory: every file a job writes there, its `result.json`, and the config identity a
resumed sweep compares. No other module names a file in a job directory; they import the names.

    result.json                    RESULT_FILE: status, reason, identity, config, environment, metrics
    iterations.parquet             ITERATIONS_FILE: one row per timed iteration
    pubmedqa_predictions.parquet   PREDICTIONS_FILE: one row per PubMedQA question
    requests.parquet               REQUESTS_FILE: one row per request of a serving scenario
    telemetry.parquet              TELEMETRY_FILE: power and clock samples over the timed phase
    job.yaml                       JOB_CONFIG_FILE: the resolved config an isolated job's child reads
    traceback.txt                  TRACEBACK_FILE: the traceback of a job that failed
    server.log                     SERVER_LOG_FILE: the output of the server a serving job started
    result.superseded-<time>.json  an ok result a re-run replaced (and its other measurement files)

**Schema version.** `result.json` carries `schema_version` (SCHEMA_VERSION). Reading checks it:
a version newer than this quantbench knows, or older than it can upgrade, is an `UnreadableResult`
with a one-line reason (the collector shows it in a `failed` row, a resumed sweep re-runs the job).
An older readable one is upgraded on read (`JobResult.from_json`): version 1 named the medians
`ttft_ms`/`tpot_ms` and the price `price_per_hour`; version 2 named the offline sample counts
`<metric>_n_samples` (`latency_n_samples`), where serving levels wrote `n_<metric>_samples`;
every version's config keys are renamed by `quantbench.schema.RENAMED_KEYS`.

**Config identity.** `config_hash` hashes the resolved job config less HASH_EXCLUDED_KEYS (what
changes how or where a job runs, not what it measures). A resumed sweep does not trust the hash
string an old result.json stores, because an upgrade of quantbench changes it without changing the
measurement: it upgrades the stored config and hashes that. Upgrading a stored config:
1. a renamed key (RENAMED_KEYS) takes its new name;
2. a key the stored config lacks (a later quantbench added it) takes the value this run gives it,
   unless this run's command line sets it: a key left at its default hashes as before it existed,
   while `bench.max_seconds=60` typed on the command line is a change and re-measures. A group
   chosen on the command line (`precision=nf4`) counts as set only where the stored config lacks
   the whole group (a new group such as a scenario); keys that the option's file holds are defaults.
Whoever adds a config key therefore gives it a default that keeps the old measurement valid. A key
that was removed, not renamed, re-measures every job that had it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable

from omegaconf import DictConfig, OmegaConf

from quantbench.atomic import json_ready, write_bytes_atomic, write_json_atomic
from quantbench.cache import stable_hash
from quantbench.errors import UnreadableResult
from quantbench.schema import RENAMED_KEYS

if TYPE_CHECKING:
    from quantbench.device import Device

log = logging.getLogger("quantbench")

RESULT_FILE = "result.json"
ITERATIONS_FILE = "iterations.parquet"
PREDICTIONS_FILE = "pubmedqa_predictions.parquet"
REQUESTS_FILE = "requests.parquet"
TELEMETRY_FILE = "telemetry.parquet"
JOB_CONFIG_FILE = "job.yaml"
TRACEBACK_FILE = "traceback.txt"
SERVER_LOG_FILE = "server.log"
# What a run measured: set aside together when an ok result is replaced, removed together otherwise.
MEASUREMENT_FILES = (RESULT_FILE, ITERATIONS_FILE, PREDICTIONS_FILE, REQUESTS_FILE, TELEMETRY_FILE)
SUPERSEDED_MARK = ".superseded-"  # result.json -> result.superseded-<time>.json

SCHEMA_VERSION = 3
OLDEST_READABLE_SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")
# Metrics renamed by each schema version: the upgrade from the version before renames them on read.
RENAMED_METRICS: dict[int, dict[str, str]] = {
    2: {"ttft_ms": "ttft_p50_ms", "tpot_ms": "tpot_p50_ms", "price_per_hour": "price_per_hour_usd"},
    # One name for a percentile's sample count, offline and serving (measure/percentiles.n_samples_column).
    3: {"latency_n_samples": "n_latency_samples", "ttft_n_samples": "n_ttft_samples", "tpot_n_samples": "n_tpot_samples"},
}

# Dotted keys of the job config that do not change a measurement.
HASH_EXCLUDED_KEYS = (
    "resume",  # whether to reuse is not part of what is reused
    "bench.isolation",  # in a child process or in this one: the same job
    "bench.timeout_s",
    "bench.repeats",  # how many repeats a sweep runs; each job's own index (bench.repeat) counts
    "cache_dir",  # where materialised models live, not which
    "analysis",  # statistics and report settings apply after the sweep
    "hardware.slurm",  # the cluster's name for a machine, not the machine
)


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
    def from_json(cls, data: Any) -> "JobResult":
        """A result.json's contents, upgraded to this schema version; UnreadableResult otherwise."""
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
        data = copy.deepcopy(data)
        for upgraded_to in range(version + 1, SCHEMA_VERSION + 1):
            data["metrics"] = _renamed(data.get("metrics") or {}, RENAMED_METRICS.get(upgraded_to, {}))
        data["schema_version"] = SCHEMA_VERSION
        data["config"] = renamed_config(data.get("config") or {})
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


def renamed_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with each key of RENAMED_KEYS under its new name (a copy; idempotent)."""
    config = copy.deepcopy(config)
    for old, new in RENAMED_KEYS.items():
        *old_parents, old_leaf = old.split(".")
        node = _node(config, old_parents)
        if node is None or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_parents, new_leaf = new.split(".")
        target = config
        for key in new_parents:
            target = target.setdefault(key, {})
        target.setdefault(new_leaf, value)
    return config


def _node(config: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    node: Any = config
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


# Reading and writing the files.


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
    return JobResult.from_json(data)


def write_traceback(job_dir: Path, text: str) -> None:
    (Path(job_dir) / TRACEBACK_FILE).write_text(text)


def last_traceback_line(job_dir: Path) -> str | None:
    path = Path(job_dir) / TRACEBACK_FILE
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else None


def write_job_config(job_dir: Path, config: dict[str, Any]) -> Path:
    """The resolved config, so an isolated job's child sees exactly the values the parent resolved
    (env vars, `${now:...}`, Hydra's own interpolations) without composing anything again."""
    path = Path(job_dir) / JOB_CONFIG_FILE
    write_bytes_atomic(path, OmegaConf.to_yaml(OmegaConf.create(config)).encode())
    return path


def load_job_config(job_dir: Path) -> DictConfig:
    path = Path(job_dir) / JOB_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected the {JOB_CONFIG_FILE} an isolated job writes")
    cfg = OmegaConf.load(path)
    OmegaConf.set_struct(cfg, True)  # as in the app: a misspelt key is an error, not None
    return cfg


# The config identity.


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved job config without Hydra's own node: what the result is a function of."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container


def config_hash(config: dict[str, Any]) -> str:
    """The hash stored in result.json, over the resolved job config less HASH_EXCLUDED_KEYS."""
    kept = json.loads(json.dumps(config, default=str))  # a deep copy to prune
    for dotted in HASH_EXCLUDED_KEYS:
        *parents, leaf = dotted.split(".")
        node = _node(kept, parents)
        if node is not None:
            node.pop(leaf, None)
    return stable_hash(kept)


def identity_of(cfg: DictConfig, device: "Device | None") -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        "precision": cfg.precision.name,
        "backend": cfg.precision.backend,
        "family": cfg.model.family,
        "batch": int(cfg.batch),
        "hardware": cfg.hardware.name,
        "dataset": cfg.dataset.name,
        "device": device.name if device else None,
    }


@dataclass(frozen=True)
class CommandLineKeys:
    """What a run's command line set: values (`bench.max_new_tokens=16` sets that key and every key
    below it) and group choices (`precision=nf4` sets the group's node, not the keys its option holds)."""

    values: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_overrides(cls, overrides: Iterable[str], groups: Collection[str]) -> "CommandLineKeys":
        """From Hydra override strings, read with Hydra's own parser; `groups` names the config groups."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        values, chosen = set(), set()
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            key = override.key_or_group
            if key in groups:
                chosen.add(override.package or key.replace("/", "."))
            elif not key.startswith("hydra.") and key != "hydra":
                values.add(key)
        return cls(frozenset(values), frozenset(chosen))

    def sets(self, key: str) -> bool:
        if any(key == value or key.startswith(value + ".") or value.startswith(key + ".") for value in self.values):
            return True
        return any(key == group or group.startswith(key + ".") for group in self.groups)


def upgraded_config(stored: dict[str, Any], current: dict[str, Any], command_line: CommandLineKeys | None) -> dict[str, Any]:
    """A stored config (keys already renamed) as this quantbench would have written it: each key it
    lacks takes `current`'s value unless `command_line` set it. None (who set what is unknown): as stored."""
    upgraded = copy.deepcopy(stored)
    if command_line is None:
        return upgraded

    def fill(into: dict[str, Any], source: dict[str, Any], prefix: str) -> None:
        for key, value in source.items():
            dotted = f"{prefix}{key}"
            if key not in into:
                if not command_line.sets(dotted):
                    into[key] = copy.deepcopy(value)
            elif isinstance(into[key], dict) and isinstance(value, dict):
                fill(into[key], value, dotted + ".")

    fill(upgraded, current, "")
    return upgraded


def reusable_result(job_dir: Path, config: dict[str, Any], command_line: CommandLineKeys | None = None) -> JobResult | None:
    """The job directory's `ok` result measured with this same config, if there is one. An
    unreadable or damaged result is never trusted: the job runs again."""
    if not has_result(job_dir):
        return None
    try:
        previous = read_result(job_dir)
    except UnreadableResult as reason:
        log.info("%s: not reused (%s)", job_dir, reason)
        return None
    if previous.status != "ok":
        return None
    if config_hash(upgraded_config(previous.config, config, command_line)) != config_hash(config):
        return None
    return previous


def _previous_status(job_dir: Path) -> str | None:
    """The status a result.json records, read as plainly as possible: an ok result of a newer
    quantbench is kept aside like any other, not deleted."""
    try:
        data = json.loads((job_dir / RESULT_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data.get("status") if isinstance(data, dict) else None


def superseded_name(name: str, stamp: str) -> str:
    path = Path(name)
    return f"{path.stem}{SUPERSEDED_MARK}{stamp}{path.suffix}"


def clear_previous_result(job_dir: Path) -> None:
    """Make way for a new run: an `ok` result is kept aside under another name, anything else goes.

    Removing a stale failed result matters: if the new run dies without writing its own, the
    collector must report that run ("did not finish"), not the old reason.
    """
    job_dir = Path(job_dir)
    if _previous_status(job_dir) == "ok":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        for name in MEASUREMENT_FILES:
            if (job_dir / name).is_file():
                os.replace(job_dir / name, job_dir / superseded_name(name, stamp))
        log.info("%s: replacing an ok result measured with another config (kept as %s)", job_dir, superseded_name(RESULT_FILE, stamp))
    else:
        for name in MEASUREMENT_FILES:
            (job_dir / name).unlink(missing_ok=True)
    (job_dir / TRACEBACK_FILE).unlink(missing_ok=True)
