"""Progress of a running job, for whoever is watching it.

At a terminal (stderr is a tty) rich draws bars for materialising, warm-up, timed iterations and
the quality phases. Where nobody sees bars (a SLURM log, nohup, CI, `> log 2>&1`) the log gets
plain lines instead: one when each phase starts, and while it runs at most one every
`LOG_INTERVAL_S` seconds with the iterations done, seconds per iteration and an estimate of the
time left. A heartbeat thread writes that line even while one iteration or step outlasts the
interval, so the log of a long job is never silent for longer than the interval.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Iterator

log = logging.getLogger("quantbench")

# At most one progress line per phase this often (seconds); tests make it small.
LOG_INTERVAL_S = 30.0
# The heartbeat never wakes more often than this, so LOG_INTERVAL_S = 0 cannot make it spin.
HEARTBEAT_MIN_WAIT_S = 1.0

# The job running in this process (one at a time): backends announce their long steps to it.
_active: JobProgress | None = None


def wants_log_lines() -> bool:
    """Plain progress lines unless both streams are terminals: a redirected stdout is where the
    sweep's log (Hydra's console handler) goes, a redirected stderr where an isolated job's goes."""
    return not (_is_terminal(sys.stdout) and _is_terminal(sys.stderr))


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class _Phase:
    """An iteration phase (warm-up, timed, a quality pass) as its last tick left it."""

    name: str
    started_at: float
    done: int
    planned: int
    remaining_s: float | None  # as the caller estimated it at the last tick; None: from the pace
    updated_at: float

    @property
    def seconds_per_iteration(self) -> float | None:
        return (self.updated_at - self.started_at) / self.done if self.done else None

    def line(self, title: str, now: float) -> str:
        text = f"{title}: {self.name} {self.done}/{self.planned} iterations"
        pace = self.seconds_per_iteration
        if pace is None:
            return f"{text}, first iteration running for {format_duration(now - self.started_at)}"
        remaining = self.remaining_s if self.remaining_s is not None else (self.planned - self.done) * pace
        remaining = max(0.0, remaining - (now - self.updated_at))
        text += f", {pace:.2f}" if pace < 10 else f", {pace:.0f}"
        text += f" s/iteration, ~{format_duration(remaining)} remaining"
        if self.done < self.planned and now - self.updated_at >= 1.0:  # a heartbeat inside an iteration says so
            text += f" (iteration {self.done + 1} running for {format_duration(now - self.updated_at)})"
        return text


@dataclass
class _Step:
    """A long step without iterations (materialising, quantizing, loading) or an announced phase."""

    description: str
    started_at: float

    @property
    def short(self) -> str:
        """The description without its parenthesised details, for the lines that follow its start."""
        return self.description.split(" (")[0]

    def line(self, title: str, now: float) -> str:
        return f"{title}: {self.short}: running for {format_duration(now - self.started_at)}"


class JobProgress:
    def __init__(self, title: str, bars: bool | None = None, lines: bool | None = None):
        self.title = title
        self.bars = _is_terminal(sys.stderr) if bars is None else bars
        self.lines = wants_log_lines() if lines is None else lines
        self._progress = None
        self._tasks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._current: _Phase | _Step | None = None  # what a heartbeat line describes
        self._steps: list[_Step] = []  # open steps, innermost last
        self._last_line_at = self._last_event_at = time.monotonic()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> JobProgress:
        global _active
        _active = self
        if self.bars:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
        if self.lines:
            self._stop.clear()
            self._heartbeat = threading.Thread(target=self._beat, name="quantbench-progress", daemon=True)
            self._heartbeat.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        global _active
        if self._heartbeat is not None:
            self._stop.set()
            self._heartbeat.join()
            self._heartbeat = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if _active is self:
            _active = None

    def status(self, message: str) -> None:
        """A phase that starts now (a quality pass, say); its ticks, if any, follow."""
        self._log(message)
        with self._lock:
            self._current = _Step(message, time.monotonic())

    @contextmanager
    def long_step(self, description: str) -> Iterator[None]:
        """A long step without a known length (materialising a model): a spinner at a terminal,
        heartbeat lines elsewhere, then its duration."""
        self._log(description)
        current = _Step(description, time.monotonic())
        task = self._progress.add_task(description, total=None) if self._progress is not None else None
        with self._lock:
            self._steps.append(current)
            self._current = current
        try:
            yield
        finally:
            with self._lock:
                self._steps.pop()
                self._current = self._steps[-1] if self._steps else None
            if task is not None and self._progress is not None:
                self._progress.remove_task(task)
        self._log(f"{current.short}: done in {time.monotonic() - current.started_at:.1f} s")

    def tick(self, phase: str, done: int, planned: int, remaining_s: float | None = None) -> None:
        """`done` of `planned` iterations of `phase` are finished (0: the phase starts now).
        `remaining_s` is the caller's estimate of the time left, when it knows better than the
        pace of this phase alone (the measurement loop also counts the timed phase after warm-up)."""
        if self._progress is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._progress.add_task(f"{self.title} {phase}", total=planned)
            self._progress.update(self._tasks[phase], completed=done, total=max(planned, done))
        if not self.lines:
            return
        now = time.monotonic()
        line = None
        with self._lock:
            current = self._current
            if not isinstance(current, _Phase) or current.name != phase:
                # A phase that does not announce its start (done > 0) began with the last event before it.
                started = now if done == 0 else self._last_event_at
                current = self._current = _Phase(phase, started, done, planned, remaining_s, now)
                if done == 0:
                    expected = f", ~{format_duration(remaining_s)} expected" if remaining_s is not None else ""
                    line = (
                        f"{self.title}: {phase} started, "
                        f"{planned} iteration{'s' if planned != 1 else ''} planned{expected}"
                    )
            current.done, current.planned, current.remaining_s, current.updated_at = done, planned, remaining_s, now
            self._last_event_at = now
            if line is None and done > 0 and now - self._last_line_at >= LOG_INTERVAL_S:
                line = current.line(self.title, now)
        if line is not None:
            self._log(line)

    def _log(self, line: str, event: bool = True) -> None:
        """Log a line; an event (unlike a heartbeat) also marks where an unannounced phase starts."""
        self._last_line_at = time.monotonic()
        if event:
            self._last_event_at = self._last_line_at
        log.info(line)

    def _beat(self) -> None:
        """Heartbeat thread: a progress line whenever none was written for LOG_INTERVAL_S."""
        while True:
            due_in_s = LOG_INTERVAL_S - (time.monotonic() - self._last_line_at)
            if self._stop.wait(max(due_in_s, HEARTBEAT_MIN_WAIT_S)):
                return
            now = time.monotonic()
            with self._lock:
                due = now - self._last_line_at >= LOG_INTERVAL_S
                line = self._current.line(self.title, now) if due and self._current is not None else None
            if line is not None:
                self._log(line, event=False)


@contextmanager
def job_step(description: str) -> Iterator[None]:
    """A long step inside the running job (quantizing, compiling kernels), shown by the job's
    progress like materialising a model is; only logged when no job is running in this process."""
    if _active is None:
        log.info(description)
        yield
    else:
        with _active.long_step(description):
            yield
