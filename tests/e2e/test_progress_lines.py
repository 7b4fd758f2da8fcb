"""Progress lines in real jobs whose output goes to a file: a line at each phase and the pace, in
process and from an isolated job's child."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from support.terminal import Stream

from quantbench.runtime import progress

QUICK_JOB = ["model=tiny-llama", "bench.max_new_tokens=4", "bench.max_input_tokens=32", "analysis.report_at_end=false"]
PACE_LINE = re.compile(r"tiny-llama fp32 b1: timed \d+/\d+ iterations, [\d.]+ s/iteration, ~\d.* remaining")


@pytest.fixture
def every_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """No interval between progress lines, and a heartbeat that wakes often."""
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    monkeypatch.setattr(progress, "HEARTBEAT_MIN_WAIT_S", 0.01)


def test_a_job_with_its_output_in_a_file_logs_its_phases_and_its_pace(
    tmp_path, run_quantbench, monkeypatch, every_line
):
    """In-process, as `python -m quantbench ... > log 2>&1` runs it: Hydra's console handler
    writes to stdout, and the job's own log file gets the same lines."""
    log = Stream(terminal=False)
    monkeypatch.setattr(sys, "stdout", log)
    monkeypatch.setattr(sys, "stderr", log)
    run_dir = run_quantbench(
        [
            *QUICK_JOB,
            "bench.isolation=none",
            "bench.warmup_iterations=2",
            "bench.min_iterations=4",
            "bench.min_seconds=0",
        ],
        tmp_path,
    )
    for text in (log.getvalue(), "".join(path.read_text() for path in Path(run_dir).glob("*.log"))):
        assert "loading tiny-llama as fp32 (fp32 on cpu)" in text
        assert "loading tiny-llama as fp32: done in" in text
        assert "tiny-llama fp32 b1: warm-up started, 2 iterations planned" in text
        assert "tiny-llama fp32 b1: timed started" in text
        assert PACE_LINE.search(text), text


# ~18 s on 2 cores; tests/runtime/test_progress.py checks the log lines by default.
@pytest.mark.slow
def test_an_isolated_job_logs_its_phases_to_the_redirected_stderr(tmp_path, run_quantbench, capfd):
    """The child process of an isolated job writes to the stderr it inherits (here a file, as under
    `2>&1`) and to the sweep's job log file; its lines say which phase it is in."""
    sweep = run_quantbench(["-m", *QUICK_JOB, "bench=quick", "bench.isolation=process"], tmp_path)
    captured = capfd.readouterr()
    job_log = "".join(path.read_text() for path in sweep.glob("*/*.log"))
    for text in (captured.err, job_log):
        assert "loading tiny-llama as fp32 (fp32 on cpu)" in text
        assert "tiny-llama fp32 b1: warm-up started, 1 iteration planned" in text
        assert "tiny-llama fp32 b1: timed started, 3 iterations planned" in text
