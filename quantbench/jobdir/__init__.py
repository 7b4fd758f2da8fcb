"""The job directory: the one directory a job writes, and the contract every other module reads it
by. No other module names a file in a job directory; they import the names from here.

- `files`: the file names (RESULT_FILE, ITERATIONS_FILE, ...) and the layout, the one owner of each;
- `result`: `result.json` as a JobResult, written, read back and upgraded from older schema
  versions on read; the traceback of a failed job;
- `config_file`: the resolved config an isolated job's child reads (JOB_CONFIG_FILE);
- `identity`: the config identity a resumed sweep compares (`config_hash`, `identity_of`) and how
  a config an older quantbench stored is upgraded before comparing;
- `previous_result`: the result already there when a job runs: reused, kept aside or removed.
"""

from quantbench.config.schema import RENAMED_KEYS
from quantbench.jobdir.config_file import load_job_config, write_job_config
from quantbench.jobdir.files import (
    ITERATIONS_FILE,
    JOB_CONFIG_FILE,
    MEASUREMENT_FILES,
    PREDICTIONS_FILE,
    REQUESTS_FILE,
    RESULT_FILE,
    REUSE_RECORD_FILE,
    SERVED_FIDELITY_FILE,
    SERVER_LOG_FILE,
    SERVER_METRICS_FILE,
    SLURM_STDERR_FILE,
    SLURM_STDOUT_FILE,
    SUPERSEDED_MARK,
    TELEMETRY_FILE,
    TRACEBACK_FILE,
    result_stamp,
    superseded_name,
)
from quantbench.jobdir.identity import (
    HASH_EXCLUDED_KEYS,
    CommandLineKeys,
    config_hash,
    identity_of,
    job_config,
    renamed_config,
    upgraded_config,
)
from quantbench.jobdir.previous_result import clear_previous_result, reusable_result
from quantbench.jobdir.result import (
    OLDEST_READABLE_SCHEMA_VERSION,
    RENAMED_METRICS,
    SCHEMA_VERSION,
    STATUSES,
    JobResult,
    has_result,
    last_traceback_line,
    read_result,
    write_result,
    write_traceback,
)

__all__ = [
    # files
    "RESULT_FILE",
    "ITERATIONS_FILE",
    "PREDICTIONS_FILE",
    "REQUESTS_FILE",
    "TELEMETRY_FILE",
    "JOB_CONFIG_FILE",
    "TRACEBACK_FILE",
    "SERVER_LOG_FILE",
    "REUSE_RECORD_FILE",
    "SERVER_METRICS_FILE",
    "SERVED_FIDELITY_FILE",
    "SLURM_STDOUT_FILE",
    "SLURM_STDERR_FILE",
    "MEASUREMENT_FILES",
    "SUPERSEDED_MARK",
    "superseded_name",
    "result_stamp",
    # result
    "SCHEMA_VERSION",
    "OLDEST_READABLE_SCHEMA_VERSION",
    "STATUSES",
    "RENAMED_METRICS",
    "JobResult",
    "write_result",
    "has_result",
    "read_result",
    "write_traceback",
    "last_traceback_line",
    # config_file
    "write_job_config",
    "load_job_config",
    # identity; RENAMED_KEYS is quantbench.config.schema's table, here as the one renamed_config reads
    "HASH_EXCLUDED_KEYS",
    "RENAMED_KEYS",
    "job_config",
    "config_hash",
    "identity_of",
    "CommandLineKeys",
    "renamed_config",
    "upgraded_config",
    # previous_result
    "reusable_result",
    "clear_previous_result",
]
