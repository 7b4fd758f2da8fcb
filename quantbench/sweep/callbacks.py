"""Hydra callbacks: sweep-level work after the last job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("quantbench")


class CollectSweep(Callback):
    """Collect every job's result.json into summary.parquet/.csv and print the table."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from quantbench.sweep.early_worker import settle
        from quantbench.sweep.interrupt import note_running

        # Where a Ctrl-C writes the summary so far, whichever launcher runs the jobs (and where).
        note_running(Path(config.hydra.sweep.dir), multirun=True)
        settle(config)  # the warm worker imports torch while Hydra composes the jobs' configs

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from quantbench.collect.sweeps import SUMMARY_PARQUET, print_table, write_summary

        if OmegaConf.select(config, "hydra.sweeper.dry_run", default=False):
            return  # a planned sweep that launched nothing: nothing new to collect

        sweep_dir = Path(config.hydra.sweep.dir)
        frame = write_summary(sweep_dir)
        print_table(
            frame,
            f"{sweep_dir} ({frame.height} configurations)"
            if "repeats_failed" in frame.columns
            else f"{sweep_dir} ({frame.height} jobs)",
        )
        log.info("wrote %s", sweep_dir / SUMMARY_PARQUET)
        if config.get("analysis") is not None and config.analysis.report_at_end:
            write_sweep_report(sweep_dir, config)


def write_sweep_report(sweep_dir: Path, config: DictConfig) -> None:
    """report.md/.html after collection. The measurements are already safe on disk, so a report
    that cannot be written is a warning with the command to retry, not a failed sweep."""
    from quantbench.config.schema import AnalysisConfig
    from quantbench.report import write_report

    try:
        files = write_report(sweep_dir, AnalysisConfig.from_values(config.analysis))
    except Exception as error:
        log.warning(
            "no report for %s (%s: %s); retry with: quantbench report %s",
            sweep_dir,
            type(error).__name__,
            error,
            sweep_dir,
        )
        return
    log.info("wrote %s and %s", files.markdown, files.html)
