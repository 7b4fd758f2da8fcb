"""How long do `quantbench collect`, `report` and `resume` planning take on sweeps of thousands of jobs,
and how much memory? Targets at 10,000 jobs on a 2-core machine: collect under 30 s, report under 60 s.

Each command runs as its own process, timed from the outside, its peak resident memory read from the
kernel's accounting of that one child (os.wait4). `collect` runs twice: the second time finds what the
first collected (incremental collection) and reads only what changed. `resume --dry-run` plans the
sweep (which jobs to launch) and launches nothing. The sweeps come from make_synthetic_sweep.py:

    python benchmarks/make_synthetic_sweep.py --jobs 10000 --out /tmp/sweep-10k
    python benchmarks/sweep_scale.py /tmp/sweep-10k [/tmp/sweep-1k ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantbench.collect.sweeps import JOBS_PARQUET, SUMMARY_CSV, SUMMARY_PARQUET

STEPS = (
    ("collect (first)", ["collect"]),
    ("collect (again)", ["collect"]),
    ("report", ["report"]),
    ("resume planning", ["resume", "--dry-run"]),
)


def run(arguments: list[str], sweep_dir: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak resident GB, exit code) of `quantbench ARGUMENTS SWEEP_DIR`.
    On a shared machine the CPU seconds (user + system) are the steadier figure."""
    command = [sys.executable, "-m", "quantbench.cli.main", arguments[0], str(sweep_dir), *arguments[1:]]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output:  # a file, not a pipe: a full pipe would stall the child
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - started
        output.seek(0)
        text = output.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"quantbench {' '.join(arguments)} {sweep_dir} exited with {code}:\n{text[-2000:]}")
    for line in text.splitlines():
        if "sweep of " in line:  # resume planning: what it decided (and whether it had to compose)
            print("   ", line.split("] ", 1)[-1])
    cpu_s = usage.ru_utime + usage.ru_stime
    return wall_s, cpu_s, usage.ru_maxrss / 1024 / 1024, code  # ru_maxrss is in KiB on Linux


def measure(sweep_dir: Path) -> list[tuple[str, float, float, float, int]]:
    for name in (SUMMARY_PARQUET, SUMMARY_CSV, JOBS_PARQUET):  # the first collect starts from nothing
        (sweep_dir / name).unlink(missing_ok=True)
    for stale in sweep_dir.glob(".quantbench-collected*"):
        stale.unlink()
    return [(label, *run(arguments, sweep_dir)) for label, arguments in STEPS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dirs", type=Path, nargs="+", help="sweep directories (make_synthetic_sweep.py)")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    rows = []
    for sweep_dir in args.sweep_dirs:
        jobs = sum(1 for path in sweep_dir.iterdir() if path.name.isdigit())
        for label, wall_s, cpu_s, peak_gb, code in measure(sweep_dir):
            rows.append((jobs, label, wall_s, cpu_s, peak_gb, code))
            print(f"{jobs} jobs  {label:<16} {wall_s:7.1f} s  cpu {cpu_s:6.1f} s  peak {peak_gb:5.2f} GB  exit {code}")
    print(f"load average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    print("\n| jobs | step | wall s | CPU s | peak memory GB |\n| ---: | --- | ---: | ---: | ---: |")
    for jobs, label, wall_s, cpu_s, peak_gb, code in rows:
        line = f"| {jobs:,} | {label} | {wall_s:.1f} | {cpu_s:.1f} | {peak_gb:.2f} |"
        print(line + ("" if code == 0 else f" exit {code}"))
    return 0 if all(row[-1] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
