"""`quantbench report DIR [DIR ...]`: report.md and report.html (with PNG figures) for sweep directories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quantbench.errors import QuantbenchError
from quantbench.report import FIGURES_DIR, write_report


def main(argv: list[str] | None = None) -> int:
    from quantbench.analysis.sweep import recorded_settings

    parser = argparse.ArgumentParser(prog="quantbench report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dirs",
        type=Path,
        nargs="+",
        metavar="sweep_dir",
        help="a sweep directory (e.g. multirun/2026-11-22/12-00-00); several make one report",
    )
    parser.add_argument(
        "--baseline", help="precision every other is compared with (default: the sweep's analysis.baseline, fp32)"
    )
    parser.add_argument(
        "--baseline-hardware",
        help="with several machines: the hardware every other is compared with, by hardware or device "
        "name (default: the first sweep directory's)",
    )
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default 2000)")
    parser.add_argument("--confidence", type=float, help="confidence level of the intervals (default 0.95)")
    parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--output",
        type=Path,
        help="write the report here instead of into the sweep directory (needed with several sweeps)",
    )
    args = parser.parse_args(argv)
    try:
        settings = recorded_settings(
            args.sweep_dirs[0],
            baseline=args.baseline,
            baseline_hardware=args.baseline_hardware,
            bootstrap_resamples=args.resamples,
            confidence=args.confidence,
            seed=args.seed,
        )
        files = write_report(args.sweep_dirs, settings, args.output)
    except QuantbenchError as error:
        print(f"quantbench report: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {files.markdown}, {files.html} and {len(files.figures)} figures "
        f"in {files.markdown.parent / FIGURES_DIR}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
