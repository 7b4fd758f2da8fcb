"""A long install step runs into its log, says its progress while it runs, and fails with one line
that names the log."""

from __future__ import annotations

import sys

import pytest

from quantbench.runtime import logged_steps
from quantbench.runtime.logged_steps import run_logged


class StepFailed(Exception):
    pass


def test_a_step_appends_its_command_and_output_to_the_log_and_reports_progress(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(logged_steps, "PROGRESS_EVERY_S", 0.05)
    log_file = tmp_path / "install.log"
    log_file.write_text("earlier step\n")
    script = "import time\nfor i in range(4):\n    print(f'[{i}/4]', flush=True); time.sleep(0.1)"
    seen: list[list[str]] = []

    def progress(lines: list[str]) -> str | None:
        seen.append(lines)
        return lines[-1] if lines[-1].startswith("[") else None

    with caplog.at_level("INFO", logger=logged_steps.__name__):
        run_logged([sys.executable, "-c", script], log_file, "building", StepFailed, progress)
    text = log_file.read_text()
    assert text.startswith("earlier step\n$ ") and text.rstrip().endswith("[3/4]")
    assert seen and any(record.getMessage().startswith("building: [") for record in caplog.records)


def test_a_failed_step_raises_the_callers_error_with_the_last_error_line_and_the_log(tmp_path):
    log_file = tmp_path / "install.log"
    script = "print('ERROR: No matching distribution found for torch==9'); print('bye'); raise SystemExit(3)"
    with pytest.raises(StepFailed) as raised:
        run_logged([sys.executable, "-c", script], log_file, "installing torch", StepFailed, lambda lines: None)
    message = str(raised.value)
    assert message.startswith("installing torch failed (exit 3): ERROR: No matching distribution found for torch==9")
    assert message.endswith(f"(log: {log_file})")
