"""Running the real app in-process, and reading what a sweep wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra


def run_app(args: list[str], out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """Run `python -m quantbench ARGS` in this process; returns (run or sweep dir, exit code)."""
    from quantbench.__main__ import main

    multirun = "-m" in args or "--multirun" in args
    target = out_dir / ("multirun" if multirun else "run")
    argv = ["quantbench", *args, f"hydra.sweep.dir={target}", f"hydra.run.dir={target}"]
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        GlobalHydra.instance().clear()
    return target, code


def sweep_rows(args: list[str], out_dir: Path) -> dict[str, dict]:
    """Run an in-process sweep (`-m` is added) for a module-scoped fixture, which cannot use the
    test-scoped monkeypatch; its summary rows by precision."""
    import polars as pl

    monkeypatch = pytest.MonkeyPatch()
    try:
        target, code = run_app(["-m", *args], out_dir, monkeypatch)
    finally:
        monkeypatch.undo()
    assert code == 0, f"quantbench -m {' '.join(args)} exited with {code}"
    return {row["precision"]: row for row in pl.read_parquet(target / "summary.parquet").iter_rows(named=True)}


def only_job(sweep_or_run: Path) -> tuple[dict, Path]:
    """The result.json of the one job a run or sweep made, and that job's directory."""
    [result_file] = sweep_or_run.rglob("result.json")
    return json.loads(result_file.read_text()), result_file.parent


def results_by_backend(sweep: Path) -> dict[str, dict]:
    results = [json.loads(path.read_text()) for path in sweep.glob("*/result.json")]
    return {result["identity"]["backend"]: result for result in results}
