"""Progress for the person at the terminal: rich bars for materialisation, warm-up and timed
iterations when stderr is a terminal; plain log lines (the job's log file keeps them) otherwise."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from types import TracebackType
from typing import Iterator

log = logging.getLogger("quantbench")


class JobProgress:
    def __init__(self, title: str, enabled: bool | None = None):
        self.title = title
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "JobProgress":
        if self.enabled:
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
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def status(self, message: str) -> None:
        """A step that takes a while (materialising, quantizing, compiling) is announced."""
        log.info(message)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A long step without a known length (materialising a model): a spinner, then its duration."""
        log.info(description)
        started = time.perf_counter()
        task = self._progress.add_task(description, total=None) if self._progress is not None else None
        try:
            yield
        finally:
            if task is not None:
                self._progress.remove_task(task)
        log.info("%s: done in %.1f s", description.split(" (")[0], time.perf_counter() - started)

    def tick(self, phase: str, done: int, planned: int) -> None:
        if self._progress is None:
            return
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(f"{self.title} {phase}", total=planned)
        self._progress.update(self._tasks[phase], completed=done, total=max(planned, done))
