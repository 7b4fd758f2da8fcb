"""A warm worker for isolated jobs: a fork server that has imported torch, transformers and
quantbench once, and forks each job's process from there in a few milliseconds.

Why: a fresh `python -m quantbench.child` pays the interpreter's and the libraries' start-up
(seconds on a busy machine) before every job; on a sweep of small jobs that was half the wall time.
A forked job still has its own process (its own peak memory, its own crash), only not its own
imports.

Rules that keep a fork honest:
- The worker never initialises CUDA: a CUDA context does not survive `fork`. It imports modules and
  runs nothing; before every fork it checks `torch.cuda.is_initialized()` and refuses if it is, and
  it asks torch to answer `is_available()` from NVML rather than from the CUDA driver.
- Each job's process leads its own session (`setsid`), so the sweep stops it and everything it
  started with one `killpg`, exactly like a spawned child; its exit status (a signal included) is
  passed back by the worker, which is its parent.
- Nothing outlives the sweep: the worker dies with the sweep's process (parent-death signal; it also
  exits when its request pipe closes) and each job's process dies with the worker.
- A job runs the code on disk: if a quantbench file the worker imported has changed since (a
  checkout, an edit during a long sweep), the worker exits instead of forking and the sweep starts
  a new one.
- Anything that stops the worker from starting (an import error, a timeout, no pidfd on an old
  kernel) is logged once and the sweep starts each job with a fresh interpreter, as before.

Protocol, JSON lines on two pipes: the sweep writes `{"job_dir", "log_files", "env", "cwd"}`; the
worker answers `{"ready"}` once, then `{"pid"}` per job and `{"exited", "returncode"}` when it ends.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from quantbench.child import PARENT_PID_ENV
from quantbench.processes import die_with_parent, stop_process_group

log = logging.getLogger("quantbench")

# Imported once in the worker: what every job's process would otherwise import again. Not polars
# (quantbench.scenarios.offline imports it, so not that either): its thread pools do not survive a fork, so each
# job imports it itself (a fraction of a second). torch is made to be forked (DataLoader workers).
WARM_IMPORTS = (
    "torch",
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.llama.modeling_llama",
    "transformers.generation.utils",
    "safetensors.torch",
    "quantbench.job_setup",
    "quantbench.jobdir",
    "quantbench.backends.dense",
    "quantbench.backends.transformers_loading",
    "quantbench.families.decoder",
    "quantbench.measure.environment",
    "quantbench.measure.loop",
    "quantbench.measure.memory",
    "quantbench.quality",
    "quantbench.scenarios",
)
NOT_FORK_SAFE = ("polars",)  # modules that must not be imported in the worker
READY_TIMEOUT_S = 300.0  # importing torch and transformers on a busy 2-core machine
NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"  # torch.cuda.is_available() without initialising CUDA


class WorkerUnavailable(Exception):
    """The warm worker could not start or stopped answering; the reason is one line."""


def _send(fd: int, message: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


class _Lines:
    """JSON messages from a pipe, read with a timeout."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def read(self, timeout_s: float | None) -> dict[str, Any] | None:
        """The next message; None past the timeout; WorkerUnavailable when the pipe closed."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise WorkerUnavailable("the warm worker exited")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


class ForkedJob:
    """A job's process forked by the worker, with the part of `subprocess.Popen` that
    quantbench.isolation uses (`pid`, `wait`), so timeouts and Ctrl-C treat it like a spawned one."""

    def __init__(self, worker: "WarmWorker", pid: int):
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

    def __init__(self, environment: dict[str, str]):
        # A forked job writes to the worker's stdout/stderr: the ones the sweep had when it started it.
        self.stdio = stdio_identity()
        requests_read, self.requests = os.pipe()
        replies_read, replies_write = os.pipe()
        worker_environment = {**environment, NVML_CHECK_ENV: "1"}
        started = time.monotonic()
        # Its own session: a terminal's Ctrl-C reaches the sweep, which stops the running job itself.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quantbench.warm_worker", str(requests_read), str(replies_write)],
            pass_fds=(requests_read, replies_write),
            env=worker_environment,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(requests_read)
        os.close(replies_write)
        self.replies = _Lines(replies_read)
        self.exits: dict[int, int] = {}
        self.jobs_started = 0
        try:
            ready = self.replies.read(READY_TIMEOUT_S)
        except WorkerUnavailable:
            ready = None
        if not ready or "ready" not in ready:
            self.close()
            raise WorkerUnavailable((ready or {}).get("error") or f"the warm worker did not start within {READY_TIMEOUT_S:g} s")
        log.info("warm worker ready in %.1f s (pid %d): isolated jobs are forked from it", time.monotonic() - started, self.process.pid)

    def start(self, job_dir: Path, log_files: list[str], environment: dict[str, str]) -> ForkedJob:
        try:
            _send(self.requests, {"job_dir": str(job_dir), "log_files": log_files, "env": environment, "cwd": os.getcwd()})
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
        if _worker is None or not _worker.alive:
            try:
                _worker = WarmWorker(environment)
                atexit.register(_worker.close)
            except (WorkerUnavailable, OSError) as error:
                _unavailable = str(error)
                log.warning("no warm worker (%s); each isolated job starts a fresh Python interpreter", _unavailable)
                _worker = None
                return None
        try:
            return _worker.start(job_dir, log_files, environment)
        except WorkerUnavailable as error:
            log.warning("warm worker stopped (%s); %s", error, "starting a new one" if attempt == 0 else "starting a fresh interpreter")
            _worker.close()
            _worker = None
    return None


# ---- the worker process: python -m quantbench.warm_worker REQUESTS_FD REPLIES_FD ----


def _cuda_initialised() -> bool:
    import torch

    return bool(torch.cuda.is_initialized())


def _run_forked_job(request: dict[str, Any], worker_pid: int, started_fd: int, worker_fds: list[int]) -> None:
    """In the forked process: become a job process like a spawned child, run the job, exit."""
    returncode = 1
    try:
        os.setsid()  # its own session, as `start_new_session=True` gives a spawned child
        os.write(started_fd, b"1")
        for fd in [started_fd, *worker_fds]:  # the worker's pipes are not the job's
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[PARENT_PID_ENV] = str(worker_pid)  # its parent is the worker, which it dies with
        os.chdir(request["cwd"])
        from quantbench.child import child_arguments, main

        returncode = main(child_arguments(request["job_dir"], request["log_files"]))
    except BaseException:  # noqa: BLE001 - never return into the worker's loop
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
        finally:
            os._exit(returncode)


def _fork_job(request: dict[str, Any], worker_fds: list[int]) -> int:
    """Fork one job's process; returns its pid once it leads its own session (so a killpg from the
    sweep always reaches it)."""
    started_read, started_write = os.pipe()
    worker_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(started_read)
        _run_forked_job(request, worker_pid, started_write, worker_fds)
    os.close(started_write)
    os.read(started_read, 1)  # b"1" after setsid, or b"" if it died first
    os.close(started_read)
    return pid


def prepare() -> str | None:
    """Import what every job imports; the reason this process cannot fork jobs, or None."""
    import importlib

    from quantbench.logs import quiet_third_party_chatter

    try:
        quiet_third_party_chatter()  # before torchao is imported: its import-time notices are not the user's
        for name in WARM_IMPORTS:
            importlib.import_module(name)
        # Compiled at a process's first load (~0.3 s of regular expressions): once, here.
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping("llama")
        os.close(os.pidfd_open(os.getpid()))  # Linux >= 5.3: how the worker waits for its jobs
    except Exception as error:  # noqa: BLE001 - the sweep falls back to fresh interpreters
        return f"the warm worker could not prepare: {type(error).__name__}: {error}"
    if _cuda_initialised():
        return "CUDA was initialised while importing; a job forked from here could not use the GPU"
    imported = [name for name in NOT_FORK_SAFE if name in sys.modules]
    if imported:
        return f"{', '.join(imported)} was imported, and its threads do not survive a fork"
    return None


def _quantbench_sources() -> dict[str, int]:
    """The source files of the quantbench modules imported here, with their modification times."""
    sources = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == "quantbench" or name.startswith("quantbench.")):
            try:
                sources[path] = os.stat(path).st_mtime_ns
            except OSError:
                sources[path] = -1
    return sources


def stale_sources(imported: dict[str, int]) -> list[str]:
    """Imported quantbench files changed on disk since: a job forked now would mix old and new code."""
    changed = []
    for path, mtime_ns in imported.items():
        try:
            now = os.stat(path).st_mtime_ns
        except OSError:
            now = -1
        if now != mtime_ns:
            changed.append(path)
    return changed


def serve(requests_fd: int, replies_fd: int) -> int:
    die_with_parent(int(os.environ[PARENT_PID_ENV]) if os.environ.get(PARENT_PID_ENV) else None)
    error = prepare()
    if error:
        _send(replies_fd, {"error": error})
        return 1
    _send(replies_fd, {"ready": True, "pid": os.getpid()})
    imported = _quantbench_sources()
    requests = _Lines(requests_fd)
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        readable = select.select([requests_fd, *children], [], [])[0]
        for pidfd in [fd for fd in readable if fd in children]:
            pid = children.pop(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            _send(replies_fd, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})
        while requests_fd in readable:
            try:
                request = requests.read(0)
            except WorkerUnavailable:  # the sweep closed its end: it is done, or gone
                return 0
            if request is None:
                break
            if _cuda_initialised():  # checked before every fork, not only at start
                _send(replies_fd, {"error": "CUDA is initialised in the warm worker; it cannot fork GPU jobs"})
                continue
            changed = stale_sources(imported)
            if changed:  # the sweep starts a new worker, which imports the code as it is now
                _send(replies_fd, {"error": f"quantbench's code changed since the warm worker started ({Path(changed[0]).name})"})
                return 0
            pid = _fork_job(request, [requests_fd, replies_fd, *children])
            children[os.pidfd_open(pid)] = pid
            _send(replies_fd, {"pid": pid})


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
