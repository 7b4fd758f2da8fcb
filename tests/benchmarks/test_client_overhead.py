"""benchmarks/client_overhead.py runs (its figures are for people, not assertions)."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_client_overhead_script_runs(tmp_path):
    output = tmp_path / "client_overhead.md"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "client_overhead.py"),
            "--levels",
            "1,4",
            "--tokens",
            "5",
            "--repeats",
            "1",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    text = output.read_text()
    assert "| 4 | 8 | 0 |" in text and "Most concurrent streams" in text
