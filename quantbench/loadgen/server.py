"""A server process for one serving job: started on a free port of 127.0.0.1, healthy, stopped.

The server runs in its own session (one `killpg` stops it and whatever it started) and is killed by
the kernel when the job's process dies (quantbench.runtime.processes, as for isolated jobs), so
no server outlives its job: not a failed job, a crashed client, Ctrl-C, a timeout or a killed sweep.
Its output goes to a log file in the job directory; a server that exits or never answers its
health endpoint is an error that quotes the log's last lines.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from quantbench.errors import QuantbenchError
from quantbench.runtime.processes import die_with_parent, stop_process_group

log = logging.getLogger("quantbench")
# How long a server whose level's requests failed may take to end its process (a crashed server's
# socket closes before its interpreter has exited).
EXIT_GRACE_S = 2.0

LOOPBACK = "127.0.0.1"
HEALTH_POLL_S = 0.25
LOG_TAIL_LINES = 5


class ServerFailed(QuantbenchError):
    """The server exited, or never became healthy; the message quotes its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the kernel's choice); the server binds it right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of a log, joined with ' | ' for a one-line reason."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "no log"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "empty log"


# How a server's death for lack of memory shows: the kernel's OOM killer sends SIGKILL; an
# allocation that fails inside the server leaves one of these in its log.
OUT_OF_MEMORY_LOG = re.compile(
    r"out of memory|OutOfMemoryError|MemoryError|can't allocate memory|Cannot allocate memory", re.IGNORECASE
)


def exit_description(code: int, log_file: Path, memory_setting: str | None) -> str:
    """'the server exited with code N' or 'was killed by SIGNAL', and where it looks like a lack of
    memory, that, with the setting that sizes the server's memory."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"the server was killed by {name}"
    else:
        what = f"the server exited with code {code}"
    try:
        text = Path(log_file).read_text(errors="replace")
    except OSError:
        text = ""
    if code == -signal.SIGKILL or OUT_OF_MEMORY_LOG.search(text):
        what += " (out of memory, by the look of it"
        what += f"; its memory is sized by {memory_setting})" if memory_setting else ")"
    return what


class ServerProcess:
    """`with ServerProcess(command, log_file) as server:` starts it; leaving the block stops it.
    `memory_setting` names the setting that sizes the server's memory, for the failure message."""

    def __init__(
        self,
        command: list[str],
        log_file: Path,
        environment: dict[str, str] | None = None,
        memory_setting: str | None = None,
    ):
        self.command = list(command)
        self.log_file = Path(log_file)
        self.environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(environment or {})}
        self.memory_setting = memory_setting
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log_handle:
            log_handle.write(f"$ {' '.join(self.command)}\n".encode())
            log_handle.flush()
            try:
                self.process = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_handle,
                    stderr=subprocess.STDOUT,
                    env=self.environment,
                    start_new_session=True,
                    preexec_fn=functools.partial(die_with_parent, os.getpid()) if os.name == "posix" else None,
                )
            except OSError as error:
                raise ServerFailed(f"cannot start the server ({' '.join(self.command)}): {error}") from error
        log.info("server started (pid %d), log: %s", self.process.pid, self.log_file)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def failure(self, what: str) -> ServerFailed:
        return ServerFailed(f"{what}; last lines of {self.log_file.name}: {log_tail(self.log_file)}")

    def check_running(self, requests_failed: bool = False) -> None:
        """ServerFailed, quoting the server's log, if its process has exited. After a level whose
        requests failed, a server that crashed may have closed its socket (the requests' errors) and
        still be ending its process: it gets up to EXIT_GRACE_S to show its exit code."""
        code = self.exit_code()
        if code is None and requests_failed and self.process is not None:
            try:
                code = self.process.wait(timeout=EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                code = None
        if code is not None:
            raise self.failure(exit_description(code, self.log_file, self.memory_setting))

    def wait_healthy(self, health_url: str, timeout_s: float) -> float:
        """Seconds until `health_url` answered 200; ServerFailed if the server exits or the time runs out."""
        return wait_healthy(health_url, timeout_s, check=self.check_running, failure=self.failure)

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after a grace period; idempotent."""
        process = self.process
        if process is None:
            return
        stop_process_group(process)
        log.info("server stopped (pid %d, exit code %s)", process.pid, process.returncode)


def wait_healthy(health_url: str, timeout_s: float, check=None, failure=ServerFailed) -> float:
    """Poll `health_url` until it answers 200 (seconds waited); `check()` between polls may raise
    (a server that exited); past `timeout_s`, raises `failure(message)`."""
    import asyncio

    import aiohttp

    from quantbench.loadgen.client import get_json

    async def poll() -> float:
        started = time.monotonic()
        while True:
            if check is not None:
                check()
            try:
                status, _ = await get_json(health_url, {}, 5.0)
                if status == 200:
                    return time.monotonic() - started
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass  # not listening yet
            if time.monotonic() - started > timeout_s:
                raise failure(
                    f"the server did not answer {health_url} within {timeout_s:g} s (serve.startup_timeout_s)"
                )
            await asyncio.sleep(HEALTH_POLL_S)

    return asyncio.run(poll())
