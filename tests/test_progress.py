"""Progress where nobody sees bars: a job whose output goes to a file logs a line at each phase and,
while a phase runs, a line with iterations done, seconds per iteration and the time remaining."""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from quantbench import progress
from quantbench.progress import JobProgress, job_step, wants_log_lines

QUICK_JOB = ["model=tiny-llama", "bench.max_new_tokens=4", "bench.max_input_tokens=32", "analysis.report_at_end=false"]
PACE_LINE = re.compile(r"tiny-llama fp32 b1: timed \d+/\d+ iterations, [\d.]+ s/iteration, ~\d.* remaining")


class Stream(io.StringIO):
    """A captured stream that says whether it is a terminal."""

    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def wait_for(condition, timeout_s: float = 60.0) -> None:
    """Poll until `condition()` holds; the heartbeat runs on its own thread."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def every_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """No interval between progress lines, and a heartbeat that wakes often."""
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.0)
    monkeypatch.setattr(progress, "HEARTBEAT_MIN_WAIT_S", 0.01)


@pytest.mark.parametrize(
    ("stdout_terminal", "stderr_terminal", "lines"),
    [(True, True, False), (False, True, True), (True, False, True), (False, False, True)],
)
def test_lines_unless_both_streams_are_terminals(monkeypatch, stdout_terminal, stderr_terminal, lines):
    monkeypatch.setattr(sys, "stdout", Stream(stdout_terminal))
    monkeypatch.setattr(sys, "stderr", Stream(stderr_terminal))
    assert wants_log_lines() is lines
    job = JobProgress("job")
    assert job.lines is lines and job.bars is stderr_terminal


def test_a_slow_iteration_gets_a_line_with_pace_remaining_time_and_how_long_it_runs(every_line, caplog):
    caplog.set_level(logging.INFO, logger="quantbench")
    with JobProgress("job", bars=False, lines=True) as job:
        job.tick("timed", 0, 3, None)
        job.tick("timed", 1, 3, 40.0)
        wait_for(lambda: "iteration 2 running for" in caplog.text)
    assert "job: timed started, 3 iterations planned" in caplog.text
    assert re.search(r"job: timed 1/3 iterations, [\d.]+ s/iteration, ~\d+ s remaining", caplog.text)
    assert "iteration 2 running for" in caplog.text
    assert not [thread for thread in threading.enumerate() if thread.name == "quantbench-progress"]


def test_a_long_step_gets_heartbeat_lines(every_line, caplog):
    caplog.set_level(logging.INFO, logger="quantbench")
    with JobProgress("job", bars=False, lines=True), job_step("quantizing the model (once)"):
        wait_for(lambda: "running for" in caplog.text)
    assert "job: quantizing the model: running for" in caplog.text
    assert "quantizing the model: done in" in caplog.text


def test_lines_respect_the_interval(monkeypatch, caplog):
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 3600.0)
    caplog.set_level(logging.INFO, logger="quantbench")
    with JobProgress("job", bars=False, lines=True) as job:
        job.tick("warm-up", 0, 2, None)
        for done in range(1, 3):
            job.tick("warm-up", done, 2, 1.0)
        job.tick("pubmedqa", 1, 10)  # a phase that does not announce its start gets no start line
    assert [record.getMessage() for record in caplog.records] == ["job: warm-up started, 2 iterations planned"]


def test_a_step_outside_a_job_is_only_logged(caplog):
    caplog.set_level(logging.INFO, logger="quantbench")
    with job_step("materialising a model"):
        pass
    assert [record.getMessage() for record in caplog.records] == ["materialising a model"]


def test_a_job_with_its_output_in_a_file_logs_its_phases_and_its_pace(tmp_path, run_quantbench, monkeypatch, every_line):
    """In-process, as `python -m quantbench ... > log 2>&1` runs it: Hydra's console handler
    writes to stdout, and the job's own log file gets the same lines."""
    log = Stream(terminal=False)
    monkeypatch.setattr(sys, "stdout", log)
    monkeypatch.setattr(sys, "stderr", log)
    run_dir = run_quantbench(
        [*QUICK_JOB, "bench.isolation=none", "bench.warmup_iterations=2", "bench.min_iterations=4", "bench.min_seconds=0"],
        tmp_path,
    )
    for text in (log.getvalue(), "".join(path.read_text() for path in Path(run_dir).glob("*.log"))):
        assert "loading tiny-llama as fp32 (fp32 on cpu)" in text
        assert "loading tiny-llama as fp32: done in" in text
        assert "tiny-llama fp32 b1: warm-up started, 2 iterations planned" in text
        assert "tiny-llama fp32 b1: timed started" in text
        assert PACE_LINE.search(text), text


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
