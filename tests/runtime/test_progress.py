"""Progress where nobody sees bars: a job whose output goes to a file logs a line at each phase and,
while a phase runs, a line with iterations done, seconds per iteration and the time remaining."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time

import pytest
from support.terminal import Stream

from quantbench.runtime import progress
from quantbench.runtime.progress import JobProgress, job_step, wants_log_lines


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
