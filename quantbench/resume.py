"""Resume: a sweep re-run into an existing sweep directory measures only what is not there yet.

A job's `result.json` stores `config_hash`, the hash of its resolved config. When the same job
runs again (`hydra.sweep.dir=<the old sweep>`, same sweep overrides, so the same job numbers)
and its directory holds an `ok` result with the same hash, that result is reused and nothing is
measured; a `failed` or `skipped` result, a missing one, or one measured with another config is
run again. `resume=false` re-runs every job.

The hash leaves out settings that change how or where a job runs but not what it measures
(`HASH_EXCLUDED_KEYS`), so switching isolation, raising a timeout or moving the cache does not
throw measurements away.

A result that is replaced is never deleted when it was `ok`: it is renamed to
`result.superseded-<time>.json` beside the new one, which the collector does not read, so the
summary holds each job once and the old numbers stay on disk.

`quantbench resume DIR [OVERRIDES]` replays the overrides Hydra recorded in DIR/multirun.yaml
into DIR, which is the same as typing the sweep again with `hydra.sweep.dir=DIR`.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from quantbench.cache import stable_hash
from quantbench.results import ITERATIONS_FILE, RESULT_FILE, JobResult, read_result

log = logging.getLogger("quantbench")

# Dotted keys of the job config that do not change a measurement.
HASH_EXCLUDED_KEYS = (
    "resume",  # whether to reuse is not part of what is reused
    "bench.isolation",  # in a child process or in this one: the same job
    "bench.timeout_s",
    "cache_dir",  # where materialised models live, not which
    "analysis",  # statistics and report settings apply after the sweep
    "hardware.slurm",  # the cluster's name for a machine, not the machine
)
TRACEBACK_FILE = "traceback.txt"


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
        node = kept
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return stable_hash(kept)


def reusable_result(job_dir: Path, expected_hash: str) -> JobResult | None:
    """The job directory's `ok` result measured with this same config, if there is one."""
    path = Path(job_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        data = read_result(path)
    except (OSError, json.JSONDecodeError):
        return None  # a damaged file is re-measured, never trusted
    if data.get("status") != "ok" or data.get("config_hash") != expected_hash:
        return None
    return result_from_json(data)


def result_from_json(data: dict[str, Any]) -> JobResult:
    """A JobResult from a result.json's contents (keys it does not know are left out)."""
    return JobResult(**{key: value for key, value in data.items() if key in JobResult.__dataclass_fields__})


def clear_previous_result(job_dir: Path) -> None:
    """Make way for a new run: an `ok` result is kept aside under another name, anything else goes.

    Removing a stale failed result matters: if the new run dies without writing its own, the
    collector must report that run ("did not finish"), not the old reason.
    """
    job_dir = Path(job_dir)
    result = job_dir / RESULT_FILE
    previous_status = None
    if result.is_file():
        try:
            previous_status = read_result(result).get("status")
        except (OSError, json.JSONDecodeError):
            previous_status = None
    if previous_status == "ok":
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        os.replace(result, job_dir / f"result.superseded-{stamp}.json")
        iterations = job_dir / ITERATIONS_FILE
        if iterations.is_file():
            os.replace(iterations, job_dir / f"iterations.superseded-{stamp}.parquet")
        log.info("%s: replacing an ok result measured with another config (kept as result.superseded-%s.json)", job_dir, stamp)
    else:
        result.unlink(missing_ok=True)
        (job_dir / ITERATIONS_FILE).unlink(missing_ok=True)
    (job_dir / TRACEBACK_FILE).unlink(missing_ok=True)


SWEEP_RECORD = "multirun.yaml"  # Hydra's record of a sweep: its config and the overrides it ran with
# Hydra overrides that belong to the old invocation, not to the sweep's definition.
_NOT_REPLAYED = ("hydra.sweep.dir=", "hydra.run.dir=", "hydra.mode=")


def replay_arguments(sweep_dir: Path, extra: list[str]) -> list[str]:
    """The command-line arguments that ran `sweep_dir`, pointed at it again, plus `extra`."""
    record = Path(sweep_dir) / SWEEP_RECORD
    if not record.is_file():
        raise FileNotFoundError(
            f"no {SWEEP_RECORD} in {sweep_dir}; expected a sweep directory written by `python -m quantbench -m ...`"
        )
    overrides = OmegaConf.load(record).hydra.overrides
    replayed = [item for item in overrides.hydra if not item.startswith(_NOT_REPLAYED)]
    # A resume=false given to one run forces that run only; replaying it would never resume again.
    task = [item for item in overrides.task if item.split("=")[0].lstrip("+~") != "resume"]
    return ["-m", *task, *replayed, f"hydra.sweep.dir={sweep_dir}", *extra]


def main(argv: list[str] | None = None) -> int:
    """`quantbench resume DIR [OVERRIDES]`: the sweep in DIR again; only what lacks an ok result runs."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="quantbench resume",
        description="Run a sweep again into its own directory, with the overrides it was started with: "
        "jobs with an ok result of the same config are reused, the others run.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory (holds multirun.yaml)")
    parser.add_argument("overrides", nargs="*", help="extra overrides, e.g. resume=false or bench.timeout_s=600")
    args = parser.parse_args(argv)
    try:
        arguments = replay_arguments(args.sweep_dir, args.overrides)
    except FileNotFoundError as error:
        print(f"quantbench resume: {error}", file=sys.stderr)
        return 2
    from quantbench.__main__ import main_from_cli

    return main_from_cli(arguments)
