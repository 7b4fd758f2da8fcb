"""Waiting for a sweep's submitted jobs, and deciding, for each one that ended, whether its own result
stands or it needs a `failed` row saying why SLURM (or submitit) ended it.

A job has ended when submitit's result pickle is there (the job ran to its end, well or not) or
when SLURM says so (quantbench.sweep.slurm_jobs): killed at its time limit, cancelled, its node
lost, over its memory. Its own result.json stands when this run wrote it and it is `ok` or
`skipped`; otherwise the launcher writes a `failed` row with `JobEnd.reason`. Submitit's local
executor (a dry run on one machine) is asked through submitit instead of squeue.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from quantbench.config.registry import first_line
from quantbench.jobdir import RESULT_FILE
from quantbench.sweep.slurm_jobs import SlurmJobState, accounted_state, failure_reason, query_states

log = logging.getLogger("quantbench")

POLL_S = 2.0  # how often result pickles are looked for
MIN_STATE_POLL_S = 5.0  # how often SLURM is asked, at least (more seldom for big sweeps: one squeue line per job)
END_GRACE_S = 60.0  # a shared filesystem may show a result a little after SLURM says the job ended
FORGOTTEN_POLLS = 3  # a job the controller no longer lists this many times in a row has ended unseen
STANDING_STATUSES = ("ok", "skipped")  # a result of this run with these stays; anything else gets SLURM's reason


@dataclass
class SubmittedJob:
    """One job of the sweep: submitit's handle, its job directory, when it was submitted (time.time())."""

    job: Any
    job_dir: Path
    submitted_at: float
    first_seen_ended: float | None = field(default=None, repr=False)
    forgotten_polls: int = field(default=0, repr=False)
    last_state: SlurmJobState | None = field(default=None, repr=False)  # as squeue last listed it


@dataclass(frozen=True)
class JobEnd:
    """How one job ended. `returned`: what the job function returned (Hydra's JobReturn), when it did;
    `reason`: None when the job's own result stands, else the failed row's reason; `wrote_result`:
    whether this run of the job wrote a result.json (a failed row replaces it), else whatever an
    earlier run left there is cleared first."""

    position: int
    returned: Any
    reason: str | None
    state: SlurmJobState | None
    wrote_result: bool = False


def _pickled_outcome(job: Any) -> tuple[Any, str | None] | None:
    """(returned value, error line) from submitit's result pickle; None while there is none."""
    path = job.paths.result_pickle
    if not path.exists():
        return None
    from submitit.core.utils import pickle_load

    try:
        outcome, value = pickle_load(path)
    except Exception as error:  # a truncated or foreign pickle: the job's result is unknown
        return None, f"submitit's result {path.name} is unreadable ({type(error).__name__}: {first_line(error)})"
    if outcome == "error":  # value: the job's traceback, as text
        lines = [line.strip() for line in str(value).splitlines() if line.strip()]
        return None, lines[-1] if lines else "the job raised"
    status = getattr(getattr(value, "status", None), "name", None)
    if status == "FAILED":  # Hydra's JobReturn of a task function that raised
        raised = getattr(value, "_return_value", None)
        return value, f"{type(raised).__name__}: {first_line(raised)}" if isinstance(raised, BaseException) else status
    return value, None


def _own_result(job_dir: Path, since: float) -> tuple[str | None, str | None, bool]:
    """(status, reason, written by this run) of the result.json in `job_dir`; (None, None, False)
    when there is none. A result older than `since` is an earlier run's (or one this run reused)."""
    path = job_dir / RESULT_FILE
    try:
        fresh = path.stat().st_mtime >= since - 1.0
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None, False
    if not isinstance(data, dict):
        return None, None, False
    return data.get("status"), data.get("reason"), fresh


def end_reason(state: SlurmJobState | None, error: str | None, own_reason: str | None, job_id: str) -> str:
    """The failed row's reason: SLURM's first (it is why the job ended), then what the job itself said."""
    if error and "timed-out" in error:  # submitit's handler of SLURM's warning signal, before the limit
        limit = state.time_limit if state is not None and state.time_limit else "unknown"
        return (
            f"SLURM: TIMEOUT (time limit {limit}; submitit stopped the job at SLURM's warning, "
            "hydra.launcher.signal_delay_s before the limit)"
        )
    parts = []
    if state is not None and state.failed:
        accounted = accounted_state(job_id) if state.state == "CANCELLED" else None
        parts.append(failure_reason(state, accounted))
    detail = own_reason or error
    if detail:
        parts.append(f"the job: {detail}" if parts else detail)
    if not parts:
        ended = (
            f"SLURM state {state.state}"
            if state is not None
            else "SLURM no longer lists it: it ended over MinJobAge ago, and accounting is off"
        )
        parts.append(f"the job ended without writing {RESULT_FILE} ({ended})")
    return "; ".join(parts)


def _local_states(jobs: Sequence[SubmittedJob]) -> dict[str, SlurmJobState]:
    """Submitit's local executor: a process per job, its state from submitit."""
    states = {}
    for submitted in jobs:
        job = submitted.job
        if job.done():
            state = str(job.state)
            states[job.job_id] = SlurmJobState(job.job_id, "COMPLETED" if state == "FINISHED" else "FAILED", state)
        else:
            states[job.job_id] = SlurmJobState(job.job_id, "RUNNING")
    return states


def _array_id(job_id: str) -> str:
    return job_id.split("_")[0]


def wait_for_jobs(jobs: Sequence[SubmittedJob], cluster: str = "slurm") -> Iterator[JobEnd]:
    """Each job's end, as it happens, until every job has ended."""
    pending = dict(enumerate(jobs))
    state_poll_s = max(MIN_STATE_POLL_S, len(jobs) / 500)
    states: dict[str, SlurmJobState] = {}
    asked_at = float("-inf")
    while pending:
        now = time.time()
        if now - asked_at >= state_poll_s:
            if cluster == "slurm":
                answer = query_states(_array_id(job.job.job_id) for job in pending.values())
            else:
                answer = _local_states(list(pending.values()))
            if answer is not None:
                states, asked_at = answer, now
                for submitted in pending.values():
                    listed = states.get(submitted.job.job_id)
                    submitted.forgotten_polls = 0 if listed else submitted.forgotten_polls + 1
                    submitted.last_state = listed or submitted.last_state
        for position, submitted in list(pending.items()):
            end = _end_of(position, submitted, states.get(submitted.job.job_id), now)
            if end is not None:
                del pending[position]
                yield end
        if pending:
            time.sleep(POLL_S)


def _vanished_state(submitted: SubmittedJob) -> SlurmJobState | None:
    """What became of a job that squeue no longer lists: accounting's record where there is one;
    else a job last seen pending (or never seen) was cancelled before it started, since the
    controller keeps no record of a pending array task it drops; else unknown (None)."""
    job_id, last = submitted.job.job_id, submitted.last_state
    accounted = accounted_state(job_id)
    if accounted:
        return SlurmJobState(job_id, accounted.split()[0].rstrip("+"), None, last.node if last else None)
    if last is None or last.state == "PENDING":
        return SlurmJobState(job_id, "CANCELLED")
    return None


def _end_of(position: int, submitted: SubmittedJob, state: SlurmJobState | None, now: float) -> JobEnd | None:
    """The job's end if it has ended and enough is known to say how; None to look again later."""
    pickled = _pickled_outcome(submitted.job)
    forgotten = state is None and submitted.forgotten_polls >= FORGOTTEN_POLLS
    if pickled is None and not forgotten and (state is None or not state.ended):
        return None  # running or waiting: nothing else is read (a resumed job's old result.json is still there)
    if forgotten:
        state = _vanished_state(submitted)
    own_status, own_reason, fresh = _own_result(submitted.job_dir, submitted.submitted_at)
    returned, error = pickled if pickled is not None else (None, None)
    if pickled is not None and error is None and own_status in STANDING_STATUSES:
        return JobEnd(position, returned, None, state)  # the usual end: the job's result (new or reused) stands
    if not fresh:  # an earlier run's result says nothing about how this run ended
        own_status, own_reason = None, None
    if submitted.first_seen_ended is None:
        submitted.first_seen_ended = now
    waited_s = now - submitted.first_seen_ended
    # Wait (briefly) for SLURM's word on how a job that failed ended, and for a result a shared
    # filesystem shows late after a job that SLURM says completed.
    if waited_s < END_GRACE_S and not forgotten:
        if pickled is not None and (state is None or not state.ended):
            return None
        if pickled is None and state is not None and state.state == "COMPLETED":
            return None
    if own_status in STANDING_STATUSES:  # the job finished its measurement; what came after does not change it
        log.warning("%s: kept its %s result although %s", submitted.job_dir, own_status, error or state)
        return JobEnd(position, returned, None, state)
    reason = end_reason(state, error, own_reason, submitted.job.job_id)
    return JobEnd(position, returned, reason, state, wrote_result=fresh)
