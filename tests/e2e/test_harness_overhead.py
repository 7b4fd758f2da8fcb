"""The benchmark scripts run (their numbers are for people, not assertions)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import ROOT


# ~15 s on 2 cores; the other benchmark scripts' tests (tests/benchmarks/) run by default.
@pytest.mark.slow
def test_harness_overhead_script_runs():
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "harness_overhead.py"),
            "--model",
            "tiny-llama",
            "--rounds",
            "1",
            "--iterations",
            "2",
            "--warmup",
            "1",
            "--max-new-tokens",
            "4",
            "--batch",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "ratio (quantbench / bare tokens/s): median" in completed.stdout
