"""Child processes that never outlive the process that started them (an isolated job's child, a
server a serving job starts): each leads its own session, so one `killpg` stops it and everything it
started, and on Linux the kernel kills it when its parent dies (killed, crashed, Ctrl-C'd).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
KILL_GRACE_S = 10.0  # after SIGTERM, before SIGKILL


def die_with_parent(parent_pid: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; elsewhere nothing), and exit
    now if `parent_pid` died before that took effect. Call it first thing in a child, or start the
    child with `preexec_fn=functools.partial(die_with_parent, os.getpid())`."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def stop_process_group(process: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """Stop a child started with `start_new_session=True` and everything it started: SIGTERM to its
    process group, SIGKILL after `grace_s`, then SIGKILL to whatever its group still holds (a worker
    that ignored SIGTERM). Returns once the child has exited; idempotent."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
