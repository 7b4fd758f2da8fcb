"""Backends that die in ways no `except` can catch, for the isolation tests.

They reach the isolated job's child process through a real (test-made) distribution's entry
points on the import path; see `install_crashing_backends` in support/distributions.py.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

from quantbench.backends.dense import Float32Backend

# Set by the tests, read in the child: the child inherits the parent's environment.
DIE_ENV = "QUANTBENCH_TEST_DIE"
PID_FILE_ENV = "QUANTBENCH_TEST_PID_FILE"


class DiesWhenTold(Float32Backend):
    """fp32, except that it is SIGKILLed in the middle of loading while QUANTBENCH_TEST_DIE=1
    (as the kernel's OOM killer would): the same sweep can fail, then succeed on resume."""

    name = "dies-when-told"

    def load(self, request):
        if os.environ.get(DIE_ENV) == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().load(request)


class Segfaults(Float32Backend):
    name = "segfaults"

    def load(self, request):
        ctypes.string_at(0)  # reads address 0: SIGSEGV
        raise AssertionError("unreachable")


class Hangs(Float32Backend):
    """Records its pid, then never returns, like a hung kernel."""

    name = "hangs"

    def load(self, request):
        Path(os.environ[PID_FILE_ENV]).write_text(str(os.getpid()))
        while True:
            time.sleep(1)
