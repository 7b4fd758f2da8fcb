"""The SLURM job a process runs in, read from the variables SLURM sets in every job's environment,
and the summary columns that carry it (`slurm_job_id`, `slurm_node`).

`job_id` is the id SLURM's commands take and print (`squeue`, `scancel`): `<array job>_<task>` for
a task of a job array (quantbench's SLURM launcher submits arrays), else the plain job id; `raw_job_id`
is SLURM_JOB_ID, unique per task. Outside SLURM there is no such job: None.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

# The summary's columns (quantbench.collect) and the keys of result.json's environment["slurm"] they come from.
SLURM_COLUMNS = {"slurm_job_id": "job_id", "slurm_node": "node"}


def slurm_job(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """{"job_id", "raw_job_id", "array_job_id", "array_task_id", "node"} of the SLURM job this
    process runs in, or None outside SLURM."""
    environ = os.environ if environ is None else environ
    raw_job_id = environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID")
    if not raw_job_id:
        return None
    array_job_id = environ.get("SLURM_ARRAY_JOB_ID")
    array_task_id = environ.get("SLURM_ARRAY_TASK_ID")
    in_array = bool(array_job_id and array_task_id)
    return {
        "job_id": f"{array_job_id}_{array_task_id}" if in_array else raw_job_id,
        "raw_job_id": raw_job_id,
        "array_job_id": array_job_id if in_array else None,
        "array_task_id": int(array_task_id) if in_array and array_task_id.isdigit() else None,
        # SLURMD_NODENAME is the node this process runs on; the node list is the job's, one node here
        "node": environ.get("SLURMD_NODENAME") or environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST"),
    }


def submitted_slurm_job(job_id: str, node: str | None) -> dict[str, Any]:
    """The same record, as the process that submitted the job knows it (from its id and SLURM's
    node list): for the `failed` row of a job that SLURM ended before it could write its own."""
    array_job_id, _, array_task_id = job_id.partition("_")
    return {
        "job_id": job_id,
        "raw_job_id": None if array_task_id else job_id,
        "array_job_id": array_job_id if array_task_id else None,
        "array_task_id": int(array_task_id) if array_task_id.isdigit() else None,
        "node": node,
    }


def slurm_columns(environment: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary columns of a result's environment: empty for a job that did not run under SLURM,
    so a sweep on one machine has no SLURM columns at all."""
    slurm = (environment or {}).get("slurm")
    if not isinstance(slurm, Mapping):
        return {}
    return {column: slurm.get(key) for column, key in SLURM_COLUMNS.items()}
