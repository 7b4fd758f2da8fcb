"""The names of the files in a job directory: the one place that spells them; every other module,
in quantbench.jobdir too, imports the name.

    result.json                    RESULT_FILE: status, reason, identity, config, environment, metrics
    iterations.parquet             ITERATIONS_FILE: one row per timed iteration
    pubmedqa_predictions.parquet   PREDICTIONS_FILE: one row per PubMedQA question
    requests.parquet               REQUESTS_FILE: one row per request of a serving scenario
    served_fidelity.parquet        SERVED_FIDELITY_FILE: one row per token scored through a server
    telemetry.parquet              TELEMETRY_FILE: power and clock samples over the timed phase
    server_metrics.parquet         SERVER_METRICS_FILE: the samples of a server's Prometheus /metrics
    job.yaml                       JOB_CONFIG_FILE: the resolved config an isolated job's child reads
    traceback.txt                  TRACEBACK_FILE: the traceback of a job that failed
    server.log                     SERVER_LOG_FILE: the output of the server a serving job started
    reuse.json                     REUSE_RECORD_FILE: what an ok result was accepted under, so a resumed
                                   sweep can reuse it without composing the job's config (quantbench.sweep.plan)
    slurm.out, slurm.err           SLURM_STDOUT_FILE, SLURM_STDERR_FILE: links to a SLURM job's own
                                   stdout and stderr (submitit keeps them under <sweep>/.submitit/)
    result.superseded-<time>.json  an ok result a re-run replaced (and its other measurement files)
"""

from __future__ import annotations

from pathlib import Path

RESULT_FILE = "result.json"
ITERATIONS_FILE = "iterations.parquet"
PREDICTIONS_FILE = "pubmedqa_predictions.parquet"
REQUESTS_FILE = "requests.parquet"
SERVED_FIDELITY_FILE = "served_fidelity.parquet"
TELEMETRY_FILE = "telemetry.parquet"
SERVER_METRICS_FILE = "server_metrics.parquet"
JOB_CONFIG_FILE = "job.yaml"
TRACEBACK_FILE = "traceback.txt"
SERVER_LOG_FILE = "server.log"
REUSE_RECORD_FILE = "reuse.json"
SLURM_STDOUT_FILE = "slurm.out"
SLURM_STDERR_FILE = "slurm.err"
# What a run measured: set aside together when an ok result is replaced, removed together otherwise.
MEASUREMENT_FILES = (
    RESULT_FILE,
    ITERATIONS_FILE,
    PREDICTIONS_FILE,
    REQUESTS_FILE,
    TELEMETRY_FILE,
    SERVER_METRICS_FILE,
    SERVED_FIDELITY_FILE,
)
SUPERSEDED_MARK = ".superseded-"  # result.json -> result.superseded-<time>.json


def superseded_name(name: str, stamp: str) -> str:
    path = Path(name)
    return f"{path.stem}{SUPERSEDED_MARK}{stamp}{path.suffix}"


def result_stamp(job_dir: Path) -> list[int] | None:
    """[size, modification time in ns] of a job directory's result.json, None without one: what tells
    a result read before from one written since (incremental collection, the resume plan's records)."""
    try:
        stat = (Path(job_dir) / RESULT_FILE).stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]
