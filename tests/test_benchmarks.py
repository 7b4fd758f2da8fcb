"""The benchmark scripts run (their numbers are for people, not assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_harness_overhead_script_runs():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "harness_overhead.py"), "--model", "tiny-llama", "--rounds", "1",
         "--iterations", "2", "--warmup", "1", "--max-new-tokens", "4", "--batch", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "ratio (quantbench / bare tokens/s): median" in completed.stdout
