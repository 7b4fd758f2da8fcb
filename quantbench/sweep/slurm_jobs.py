"""SLURM's view of a sweep's submitted jobs: their states, why one ended without a result, and
links to their logs from their job directories.

The SLURM launcher (hydra_plugins/quantbench_launcher) waits on its jobs itself instead of
submitit's `job.results()`: submitit learns a job's state from `sacct`, which fails where
accounting is off (the state stays UNKNOWN), and a job that SLURM ended (its time limit,
`scancel`, a node failure, the memory limit) writes no result, so `results()` would wait forever
or raise and lose the sweep's collection. `squeue --states=all` asks the controller, which knows
every job until MinJobAge after it ended, accounting or not; `sacct` is asked only for the one
detail the controller does not keep (who cancelled a job), and only where it works.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from quantbench.jobdir import SLURM_STDERR_FILE, SLURM_STDOUT_FILE

log = logging.getLogger("quantbench")

SQUEUE_TIMEOUT_S = 60.0
# One job (array task) per line, fields in this order (squeue --format).
_FIELDS = ("job_id", "state", "reason", "node", "time_limit", "started_at", "ended_at")
_SQUEUE_FORMAT = "|".join(("%i", "%T", "%r", "%N", "%l", "%S", "%e"))
_FOLDED = re.compile(r"(?P<array>\d+)_\[(?P<tasks>[\d,-]+)(%\d+)?\]")
# States a job does not leave again (a requeued job goes back to PENDING from the others first).
ENDED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "CANCELLED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "SPECIAL_EXIT",
        "REVOKED",
    }
)
# What each end means for the user, where SLURM's state name alone does not say it.
_EXPLANATIONS = {
    "OUT_OF_MEMORY": "over the job's memory request; raise hydra.launcher.mem_gb",
    "PREEMPTED": "a job of higher priority took its resources",
    "BOOT_FAIL": "its node did not boot",
    "DEADLINE": "its deadline passed",
}


@dataclass(frozen=True)
class SlurmJobState:
    """One job (or array task) as `squeue` reports it; `job_id` as SLURM prints it (`123_4`)."""

    job_id: str
    state: str
    reason: str | None = None
    node: str | None = None
    time_limit: str | None = None
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def failed(self) -> bool:
        """Ended by SLURM or by a failure it saw, not by the job's own normal exit."""
        return self.ended and self.state != "COMPLETED"


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text in ("", "None", "N/A", "(null)", "Unknown") else text


def _task_ids(job_id: str) -> list[str]:
    """`123_4` -> [`123_4`]; a pending array's tasks that squeue folds into one line,
    `123_[4-6,9%2]` -> [`123_4`, `123_5`, `123_6`, `123_9`]."""
    folded = _FOLDED.fullmatch(job_id)
    if folded is None:
        return [job_id]
    tasks = []
    for part in folded["tasks"].split(","):
        first, _, last = part.partition("-")
        tasks += [f"{folded['array']}_{task}" for task in range(int(first), int(last or first) + 1)]
    return tasks


def parse_squeue(output: str) -> dict[str, SlurmJobState]:
    """`squeue --noheader --array --format=<_SQUEUE_FORMAT>` output, by job id (`123_4`)."""
    states: dict[str, SlurmJobState] = {}
    for line in output.splitlines():
        parts = line.split("|")
        if len(parts) != len(_FIELDS):
            continue
        values = dict(zip(_FIELDS, (_value(part) for part in parts)))
        state = (values.pop("state") or "UNKNOWN").split()[0].rstrip("+")  # "CANCELLED+" / "CANCELLED by 0"
        values.pop("job_id")
        for job_id in _task_ids(parts[0].strip()):
            states[job_id] = SlurmJobState(job_id, state, **values)
    return states


def query_states(array_job_ids: Iterable[str]) -> dict[str, SlurmJobState] | None:
    """The state of every task of these job arrays that the controller still knows (one `squeue`
    call); None when the controller cannot be asked right now (the caller asks again later)."""
    ids = sorted(set(array_job_ids))
    if not ids:
        return {}
    command = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(ids)}"]
    command.append(f"--format={_SQUEUE_FORMAT}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("squeue failed (%s); asking again shortly", error)
        return None
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:  # none of these jobs is known any more
            return {}
        log.warning("squeue failed: %s; asking again shortly", done.stderr.strip().splitlines()[-1:] or done.returncode)
        return None
    return parse_squeue(done.stdout)


def accounted_state(job_id: str) -> str | None:
    """SLURM's accounting record of a job's state ("CANCELLED by 1234"), where accounting is on; None
    where it is off (`sacct` then fails) or has no record yet."""
    command = ["sacct", "--noheader", "--parsable2", "--allocations", f"--jobs={job_id}", "--format=State"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SQUEUE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines() if done.returncode == 0 else []
    return lines[0].strip() or None if lines else None


def failure_reason(job: SlurmJobState, accounted: str | None = None) -> str:
    """The one line a `failed` row says about a job that SLURM ended or saw fail.
    `accounted`: sacct's state text, which names who cancelled a job."""
    if job.state == "TIMEOUT":
        return f"SLURM: TIMEOUT (time limit {job.time_limit or 'unknown'}; hydra.launcher.timeout_min sets it)"
    if job.state == "CANCELLED":
        if accounted and accounted.startswith("CANCELLED by "):
            return f"SLURM: CANCELLED by uid {accounted.removeprefix('CANCELLED by ').strip()}"
        return "SLURM: CANCELLED (scancel or an administrator)"
    if job.state == "NODE_FAIL":
        return f"SLURM: NODE_FAIL (node {job.node or 'unknown'} failed)"
    detail = _EXPLANATIONS.get(job.state) or job.reason
    return f"SLURM: {job.state}" + (f" ({detail})" if detail else "")


def warning_signal_problem(timeout_min: float | None, signal_delay_s: float | None) -> str | None:
    """What is wrong with submitit's warning signal for this time limit, or None. Submitit asks SLURM
    to send it `signal_delay_s` before the limit and, for a job that cannot resume (quantbench's
    cannot), stops the job there: a delay as long as the limit stops every job as it starts."""
    if not timeout_min or signal_delay_s is None or signal_delay_s < timeout_min * 60:
        return None
    return (
        f"hydra.launcher.signal_delay_s={signal_delay_s:g} is not shorter than hydra.launcher.timeout_min="
        f"{timeout_min:g} ({timeout_min * 60:g} s): submitit would stop every job as it starts; set "
        f"hydra.launcher.signal_delay_s={max(int(timeout_min * 60) // 4, 0)} or a longer timeout_min"
    )


def link_job_logs(job_dir: Path, stdout: Path, stderr: Path) -> None:
    """`<job dir>/slurm.out` and `slurm.err`: relative links to the SLURM job's own stdout and stderr,
    made at submission so a running job's log can be followed from its directory, and still valid
    when the whole sweep directory is moved or copied. A resubmitted job's links point to its new
    logs (the earlier attempt's stay in submitit's folder). A filesystem without links: a warning."""
    job_dir.mkdir(parents=True, exist_ok=True)
    for name, target in ((SLURM_STDOUT_FILE, stdout), (SLURM_STDERR_FILE, stderr)):
        link = job_dir / name
        temporary = job_dir / f".{name}.{os.getpid()}"
        try:
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(os.path.relpath(Path(target).absolute(), job_dir.absolute()))
            os.replace(temporary, link)
        except OSError as error:
            log.warning("%s: no link to the SLURM log %s (%s)", job_dir, target, error)
