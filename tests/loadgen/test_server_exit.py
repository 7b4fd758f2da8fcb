"""A server that crashed during a level fails the job even when its requests failed before its
process had finished exiting (a crashed server's socket closes first)."""

from __future__ import annotations

import sys

import pytest

from quantbench.loadgen.server import ServerFailed, ServerProcess

# Closes nothing, says why it is ending, then takes a moment to exit with code 3: a server whose
# clients already saw their connections fail while its interpreter was still tearing down.
ENDING_SLOWLY = "import sys, time; print('crashing on request 5', flush=True); time.sleep(0.5); sys.exit(3)"


def test_after_failed_requests_the_check_waits_for_a_server_that_is_ending(tmp_path):
    with ServerProcess([sys.executable, "-c", ENDING_SLOWLY], tmp_path / "server.log") as server:
        server.check_running()  # a level without failures: no wait, the server is still running
        with pytest.raises(ServerFailed, match="exited with code 3.*crashing on request 5"):
            server.check_running(requests_failed=True)


def test_after_failed_requests_a_server_that_stays_up_is_not_a_failure(tmp_path):
    with ServerProcess([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "server.log") as server:
        server.check_running(requests_failed=True)  # waits its grace, finds it running, and goes on
        assert server.exit_code() is None
