"""The warm worker's process: `python -m quantbench.sweep.fork_server REQUESTS_FD REPLIES_FD`,
started by quantbench.sweep.warm_worker. It imports what every job imports (torch, transformers,
quantbench) once, then forks each job's process on request and reports when it exits
(quantbench.sweep.fork_protocol).

Rules that keep a fork honest:
- The worker never initialises CUDA: a CUDA context does not survive `fork`. It imports modules and
  runs nothing; before every fork it checks `torch.cuda.is_initialized()` and refuses if it is (the
  sweep starts it with torch told to answer `is_available()` from NVML, not the CUDA driver).
- Each job's process leads its own session (`setsid`), so the sweep stops it and everything it
  started with one `killpg`, exactly like a spawned child; its exit status (a signal included) is
  passed back by the worker, which is its parent.
- Nothing outlives the sweep: the worker dies with the sweep's process (parent-death signal; it also
  exits when its request pipe closes) and each job's process dies with the worker.
- A job runs the code on disk: if a quantbench file the worker imported has changed since (a
  checkout, an edit during a long sweep), the worker exits instead of forking and the sweep starts
  a new one.
- Anything that keeps it from forking jobs safely (an import error, CUDA initialised by an import,
  a module whose threads do not survive a fork, no pidfd on an old kernel) is its one-line answer
  instead of `ready`.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import select
import sys
from pathlib import Path
from typing import Any

from quantbench.job.child import PARENT_PID_ENV
from quantbench.runtime.processes import die_with_parent
from quantbench.sweep.fork_protocol import MessageReader, WorkerUnavailable, send_message

# Imported once in the worker: what every job's process would otherwise import again (an offline
# transformers job, listed from sys.modules after one). torch is made to be forked (DataLoader
# workers). polars too, as long as its thread pool has not started: importing it starts only
# jemalloc's background threads (which jemalloc's fork handlers replace) and a spill-cleanup thread;
# its compute pool starts at its first parallel operation, which the worker never runs, and each
# job starts its own. `started_thread_pools` checks that before every fork.
WARM_IMPORTS = (
    "torch",
    "transformers",
    "transformers.models.auto.modeling_auto",
    "transformers.models.llama.modeling_llama",
    "transformers.generation.utils",
    "transformers.tokenization_utils_tokenizers",
    "transformers.convert_slow_tokenizer",
    "safetensors.torch",
    "polars",
    "quantbench.scenarios.setup",
    "quantbench.scenarios.offline",
    "quantbench.jobdir",
    "quantbench.job.run",
    "quantbench.backends.dense",
    "quantbench.backends.bitsandbytes",
    "quantbench.backends.transformers_loading",
    "quantbench.data.builtin",
    "quantbench.engines.transformers",
    "quantbench.engines.transformers_offline",
    "quantbench.families.decoder",
    "quantbench.models.random_init",
    "quantbench.measure.environment",
    "quantbench.measure.hardware_facts",
    "quantbench.measure.loop",
    "quantbench.measure.memory",
    "quantbench.measure.telemetry",
    "quantbench.quality",
    "quantbench.scenarios",
)
# Threads of pools a forked child would inherit as started but without their threads (a deadlock at
# its first task): polars' compute pool (polars-0, polars-1, ...) and its async runtime.
POOL_THREADS = re.compile(r"polars-\d+|tokio-rt")


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
        from quantbench.job.child import child_arguments, main

        returncode = main(child_arguments(request["job_dir"], request["log_files"]))
    except BaseException:  # never return into the worker's loop, whatever the job raised
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
    # The worker's objects (torch's, transformers') move to the collector's permanent generation:
    # the job's collections (its own gc passes, release_memory) no longer walk them, nor touch (and
    # copy) their pages.
    gc.freeze()
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

    from quantbench.runtime.logs import quiet_third_party_chatter

    try:
        quiet_third_party_chatter()  # before torchao is imported: its import-time notices are not the user's
        for name in WARM_IMPORTS:
            importlib.import_module(name)
        # Compiled at a process's first load (~0.3 s of regular expressions): once, here.
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping("llama")
        from quantbench.job.discoveries import discover

        discover()  # plugins' entry points and the hardware table, once for every job
        os.close(os.pidfd_open(os.getpid()))  # Linux >= 5.3: how the worker waits for its jobs
    except Exception as error:  # any failure: the sweep falls back to fresh interpreters
        return f"the warm worker could not prepare: {type(error).__name__}: {error}"
    if _cuda_initialised():
        return "CUDA was initialised while importing; a job forked from here could not use the GPU"
    return started_thread_pools()


def _thread_names() -> list[str]:
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:  # not Linux: the worker needs pidfd_open anyway
        return []
    names = []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                names.append(comm.read().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return names


def started_thread_pools() -> str | None:
    """Why a job forked now would inherit a started thread pool without its threads, or None."""
    started = sorted({name for name in _thread_names() if POOL_THREADS.match(name)})
    if started:
        return f"a thread pool was started in the warm worker ({', '.join(started)}); a forked job would deadlock in it"
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
        send_message(replies_fd, {"error": error})
        return 1
    send_message(replies_fd, {"ready": True, "pid": os.getpid()})
    imported = _quantbench_sources()
    requests = MessageReader(requests_fd)
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        readable = select.select([requests_fd, *children], [], [])[0]
        for pidfd in [fd for fd in readable if fd in children]:
            pid = children.pop(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            send_message(replies_fd, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})
        while requests_fd in readable:
            try:
                request = requests.read(0)
            except WorkerUnavailable:  # the sweep closed its end: it is done, or gone
                return 0
            if request is None:
                break
            if _cuda_initialised():  # checked before every fork, not only at start
                send_message(replies_fd, {"error": "CUDA is initialised in the warm worker; it cannot fork GPU jobs"})
                continue
            unsafe = started_thread_pools()
            if unsafe:  # the sweep starts a new worker
                send_message(replies_fd, {"error": unsafe})
                return 0
            changed = stale_sources(imported)
            if changed:  # the sweep starts a new worker, which imports the code as it is now
                send_message(
                    replies_fd,
                    {"error": f"quantbench's code changed since the warm worker started ({Path(changed[0]).name})"},
                )
                return 0
            pid = _fork_job(request, [requests_fd, replies_fd, *children])
            children[os.pidfd_open(pid)] = pid
            send_message(replies_fd, {"pid": pid})


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
