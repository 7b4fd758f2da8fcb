"""The result a job directory already holds when a job is about to run: reused if it is `ok` and
was measured with the same config identity, otherwise cleared away (an `ok` one kept aside under a
superseded name, anything else removed)."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quantbench.errors import UnreadableResult
from quantbench.jobdir.files import MEASUREMENT_FILES, RESULT_FILE, TRACEBACK_FILE, superseded_name
from quantbench.jobdir.identity import CommandLineKeys, config_hash, upgraded_config
from quantbench.jobdir.result import JobResult, has_result, read_result

log = logging.getLogger("quantbench")


def reusable_result(
    job_dir: Path, config: dict[str, Any], command_line: CommandLineKeys | None = None
) -> JobResult | None:
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
        log.info(
            "%s: replacing an ok result measured with another config (kept as %s)",
            job_dir,
            superseded_name(RESULT_FILE, stamp),
        )
    else:
        for name in MEASUREMENT_FILES:
            (job_dir / name).unlink(missing_ok=True)
    (job_dir / TRACEBACK_FILE).unlink(missing_ok=True)
