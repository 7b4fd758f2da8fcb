"""The sweep's side of the warm worker for isolated jobs: it starts the worker process
(quantbench.sweep.fork_server, a fork server that has imported torch, transformers and quantbench
once), asks it for each job's process, forked in a few milliseconds (`start_job`, a ForkedJob that
waits like a `subprocess.Popen`), and stops it with the sweep.

Why: a fresh `python -m quantbench.job.child` pays the interpreter's and the libraries' start-up
(seconds on a busy machine) before every job; on a sweep of small jobs that was half the wall time.
A forked job still has its own process (its own peak memory, its own crash), only not its own
imports. The rules that keep a fork honest are the worker's (quantbench.sweep.fork_server); here:
- the worker leads its own session, so a terminal's Ctrl-C reaches only the sweep, which stops the
  running job itself, and is stopped when the sweep's process exits;
- a worker that stopped answering, died or reports changed code is replaced once;
- anything that stops the worker from starting (an import error, a timeout, no pidfd on an old
  kernel) is logged once and the sweep starts each job with a fresh interpreter, as before.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from quantbench.runtime.processes import stop_process_group
from quantbench.sweep.fork_protocol import MessageReader, WorkerUnavailable, send_message

log = logging.getLogger("quantbench")

FORK_SERVER_MODULE = "quantbench.sweep.fork_server"  # the worker's process: python -m FORK_SERVER_MODULE
READY_TIMEOUT_S = 300.0  # importing torch and transformers on a busy 2-core machine
NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"  # torch.cuda.is_available() without initialising CUDA


class ForkedJob:
    """A job's process forked by the worker, with the part of `subprocess.Popen` that
    quantbench.sweep.isolation uses (`pid`, `wait`), so timeouts and Ctrl-C treat it like a spawned one."""

    def __init__(self, worker: WarmWorker, pid: int):
        self.worker, self.pid, self.returncode = worker, pid, None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.worker.wait_for_exit(self.pid, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(f"job process {self.pid}", timeout)
        return self.returncode


def stdio_identity() -> tuple[tuple[int, int] | None, ...]:
    """Which files this process's stdout and stderr are now (device, inode)."""
    identity = []
    for fd in (1, 2):
        try:
            status = os.fstat(fd)
            identity.append((status.st_dev, status.st_ino))
        except OSError:
            identity.append(None)
    return tuple(identity)


class WarmWorker:
    """The sweep's side of the worker: start it, ask it for job processes, stop it."""

    def __init__(self, environment: dict[str, str], wait: bool = True):
        """Starts the worker's process; `wait`: until it is ready (else `wait_ready` before the
        first job, so that the worker imports while the sweep composes its jobs)."""
        # A forked job writes to the worker's stdout/stderr: the ones the sweep had when it started it.
        self.stdio = stdio_identity()
        requests_read, self.requests = os.pipe()
        replies_read, replies_write = os.pipe()
        worker_environment = {**environment, NVML_CHECK_ENV: "1"}
        started = time.monotonic()
        # Its own session: a terminal's Ctrl-C reaches the sweep, which stops the running job itself.
        self.process = subprocess.Popen(
            [sys.executable, "-m", FORK_SERVER_MODULE, str(requests_read), str(replies_write)],
            pass_fds=(requests_read, replies_write),
            env=worker_environment,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(requests_read)
        os.close(replies_write)
        self.replies = MessageReader(replies_read)
        self.exits: dict[int, int] = {}
        self.jobs_started = 0
        self.started, self.ready = started, False
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the worker has imported everything and can fork; WorkerUnavailable if it cannot."""
        if self.ready:
            return
        try:
            ready = self.replies.read(max(0.0, READY_TIMEOUT_S - (time.monotonic() - self.started)))
        except WorkerUnavailable:
            ready = None
        if not ready or "ready" not in ready:
            self.close()
            raise WorkerUnavailable(
                (ready or {}).get("error") or f"the warm worker did not start within {READY_TIMEOUT_S:g} s"
            )
        self.ready = True
        log.info(
            "warm worker ready in %.1f s (pid %d): isolated jobs are forked from it",
            time.monotonic() - self.started,
            self.process.pid,
        )

    def start(self, job_dir: Path, log_files: list[str], environment: dict[str, str]) -> ForkedJob:
        self.wait_ready()
        try:
            send_message(
                self.requests, {"job_dir": str(job_dir), "log_files": log_files, "env": environment, "cwd": os.getcwd()}
            )
            while True:
                reply = self.replies.read(READY_TIMEOUT_S)
                if reply is None:
                    raise WorkerUnavailable("the warm worker did not answer a job request")
                if "error" in reply:
                    raise WorkerUnavailable(reply["error"])
                if "pid" in reply:
                    self.jobs_started += 1
                    return ForkedJob(self, int(reply["pid"]))
                self.exits[int(reply["exited"])] = int(reply["returncode"])
        except OSError as error:  # a broken pipe: the worker is gone
            raise WorkerUnavailable(f"the warm worker is gone ({error})") from error

    def wait_for_exit(self, pid: int, timeout_s: float | None) -> int | None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while pid not in self.exits:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                reply = self.replies.read(left)
            except WorkerUnavailable:
                # The worker died, and the job's process with it (parent-death signal).
                self.exits[pid] = -9
                break
            if reply is None:
                return None
            if "exited" in reply:
                self.exits[int(reply["exited"])] = int(reply["returncode"])
        return self.exits.pop(pid)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        for fd in (self.requests, self.replies.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.process.poll() is None:
            stop_process_group(self.process, grace_s=2.0)  # EOF on its requests has already told it


_worker: WarmWorker | None = None
_unavailable: str | None = None  # why the worker cannot start in this process: said once, not retried


def start_job(job_dir: Path, log_files: list[str], environment: dict[str, str]) -> ForkedJob | None:
    """The job's process, forked by this sweep's warm worker (started on first use); None when
    there is no worker: the caller starts a fresh interpreter instead."""
    global _worker, _unavailable
    if _unavailable is not None:
        return None
    for attempt in range(2):  # a worker that died since the last job is replaced once
        if _worker is not None and _worker.stdio != stdio_identity():
            # This process's output now goes elsewhere (a second sweep from the API, redirected):
            # a worker started before would send the jobs' output to the old place.
            _worker.close()
            _worker = None
        if _worker is None or not _worker.alive or not _worker.ready:
            try:
                if _worker is None or (_worker.ready and not _worker.alive):  # an early one that failed says why
                    _worker = WarmWorker(environment, wait=False)
                    atexit.register(_worker.close)
                _worker.wait_ready()  # one started early (start_early) may still be importing
            except (WorkerUnavailable, OSError) as error:
                _unavailable = str(error)
                log.warning("no warm worker (%s); each isolated job starts a fresh Python interpreter", _unavailable)
                _worker = None
                return None
        try:
            return _worker.start(job_dir, log_files, environment)
        except WorkerUnavailable as error:
            log.warning(
                "warm worker stopped (%s); %s",
                error,
                "starting a new one" if attempt == 0 else "starting a fresh interpreter",
            )
            _worker.close()
            _worker = None
    return None


def start_early(environment: dict[str, str]) -> None:
    """Start the sweep's worker now, without waiting for it: it imports torch and transformers
    (seconds) while the sweep composes and validates its jobs' configs, instead of after. The first
    isolated job waits for it to be ready; a worker that cannot start is then reported as usual."""
    global _worker
    if _worker is not None or _unavailable is not None:
        return
    try:
        _worker = WarmWorker(environment, wait=False)
    except OSError:  # no process could start: the first job says why, starting one itself
        return
    atexit.register(_worker.close)


def stop_unused() -> None:
    """Stop a worker that was started early but has forked no job (its sweep's jobs run elsewhere)."""
    global _worker
    if _worker is not None and _worker.jobs_started == 0:
        _worker.close()
        _worker = None
