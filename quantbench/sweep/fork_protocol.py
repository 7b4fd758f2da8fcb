"""The line protocol between the sweep (quantbench.sweep.warm_worker) and its warm worker
(quantbench.sweep.fork_server): one JSON object per line, on two pipes.

The sweep writes `{"job_dir", "log_files", "env", "cwd"}` per job. The worker answers `{"ready"}`
once (or `{"error"}` if it cannot fork jobs), then `{"pid"}` per job (or `{"error"}`) and
`{"exited", "returncode"}` when a job's process ends.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any


class WorkerUnavailable(Exception):
    """The warm worker could not start or stopped answering; the reason is one line."""


def send_message(fd: int, message: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


class MessageReader:
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
