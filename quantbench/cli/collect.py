"""`quantbench collect DIR [DIR ...]`: aggregate sweep directories into summary.parquet/.csv and print it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quantbench.collect.sweeps import SUMMARY_CSV, SUMMARY_PARQUET, collect_sweeps, print_table, write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantbench collect", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sweep_dirs",
        type=Path,
        nargs="+",
        metavar="sweep_dir",
        help="a sweep directory (e.g. multirun/2026-11-22/12-00-00); several merge into one summary",
    )
    parser.add_argument("--output", type=Path, help="write the summary here (needed with several sweep directories)")
    args = parser.parse_args(argv)
    if len(args.sweep_dirs) > 1 and args.output is None:
        print(
            "quantbench collect: several sweep directories need --output DIR for their merged summary", file=sys.stderr
        )
        return 2
    output = args.output or args.sweep_dirs[0]
    try:
        frame = write_summary(output, collect_sweeps(args.sweep_dirs))
    except FileNotFoundError as error:
        print(f"quantbench collect: {error}", file=sys.stderr)
        return 2
    print_table(frame, f"{', '.join(map(str, args.sweep_dirs))} ({frame.height} jobs)")
    print(f"wrote {output / SUMMARY_PARQUET} and {output / SUMMARY_CSV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
