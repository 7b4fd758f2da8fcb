"""A long install step (pip installing an engine's environment, cmake and ninja building llama.cpp's
tools) run into a log file, with a progress line every so often so a user watching a minutes-long
install sees it move, and one clear error naming the log when the step fails.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 30.0
TAIL_BYTES = 4096  # enough for the last few lines of pip's or ninja's output


def log_tail(log_file: Path) -> list[str]:
    """The last lines of the log (read from its end: an install log grows to megabytes)."""
    with open(log_file, "rb") as log_text:
        log_text.seek(max(0, log_file.stat().st_size - TAIL_BYTES))
        return log_text.read().decode(errors="replace").splitlines()


def run_logged(
    command: list[str],
    log_file: Path,
    what: str,
    failure: type[Exception],
    progress: Callable[[list[str]], str | None],
    environment: dict[str, str] | None = None,
) -> None:
    """Run one step with its output appended to `log_file`; every PROGRESS_EVERY_S seconds log
    `progress(last lines)` where it finds a step to say. A non-zero exit raises `failure` with the
    log's last error line (else its last line) and the log's path."""
    with open(log_file, "a") as sink:
        sink.write(f"$ {shlex.join(command)}\n")
        sink.flush()
        # Its own process group: an interrupted install stops pip, ninja or the compilers with it.
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
        try:
            while True:
                try:
                    code = process.wait(timeout=PROGRESS_EVERY_S)
                    break
                except subprocess.TimeoutExpired:
                    step = progress(log_tail(log_file))
                    if step:
                        log.info("%s: %s", what, step)
        finally:
            if process.poll() is None:  # interrupted: nothing the step started may outlive it
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if code != 0:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        last = (errors or lines or ["no output"])[-1].strip()
        raise failure(f"{what} failed (exit {code}): {last} (log: {log_file})")
