"""How much wall time does an isolated sweep spend outside its jobs' own work?

Runs the 8-job tiny-llama sweep (`precision=fp32,bf16,int8,nf4 batch=1,4`, each job in its own
process) as `python -m quantbench -m ...`, times it from the outside, and divides by the sum of its
jobs' own phases as each `result.json` records them: materialise + load + quantize + warm-up +
timed seconds (the names present; a phase a job does not record counts 0, and the script says
which were missing). The rest is process start-up, imports, the collector and the report. Target:
a ratio of at most 1.3 with `bench.isolation=process` (jobs forked from a warm worker).

    python benchmarks/sweep_overhead.py                          # the warm worker
    python benchmarks/sweep_overhead.py --isolation spawn        # a fresh interpreter per job
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED_AT = ENDED_AT = 0.0  # the sweep's start and end (time.time()), for the timeline
SWEEP = ["-m", "model=tiny-llama", "precision=fp32,bf16,int8,nf4", "batch=1,4", "hardware=cpu"]
# A job's own phases, as result.json's metrics name them (quantbench/job/run.py).
PHASES = ("materialise_s", "load_s", "quantize_s", "warmup_s", "measured_s")


def job_seconds(result: dict, missing: set[str]) -> float:
    metrics = result.get("metrics") or {}
    total = 0.0
    for name in PHASES:
        value = metrics.get(name)
        if value is None:
            missing.add(name)
            continue
        total += float(value)
    return total


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def timeline(started_at: float, ended_at: float, out_dir: Path, results: list[dict]) -> list[str]:
    """Where the overhead went, from the files' times (the sweep writes job.yaml right before it
    starts a job's process, the job writes result.json at its end) and the jobs' own phases:
    - before: the sweep's start, or the previous job's result, to this job's job.yaml (the previous
      job's exit, Hydra's per-job set-up and composition, the resume check);
    - startup_s: job.yaml to the load (the fork, or the worker's start for the first job, and the
      job's own set-up);
    - after: the end of the timed phase to result.json (quality, metrics, writing the result);
    - the end: the last result to the sweep's exit (the collector, the table, exiting)."""
    lines = [f"  {'job':>9}  {'before':>7}  {'startup_s':>9}  {'phases':>7}  {'after':>6}"]
    previous = started_at
    totals = {"before": 0.0, "startup": 0.0, "after": 0.0}
    for result in results:
        job_dir = out_dir / str(result.get("job_dir_name", ""))
        metrics = result.get("metrics") or {}
        written = _mtime(job_dir / "job.yaml")
        finished = _mtime(job_dir / "result.json")
        if written is None or finished is None:
            continue
        startup = float(metrics.get("startup_s") or 0.0)
        phases = job_seconds(result, set())
        before, after = written - previous, finished - written - startup - phases
        totals["before"] += before
        totals["startup"] += startup
        totals["after"] += after
        name = f"{result['identity']['precision']} b{result['identity']['batch']}"
        lines.append(f"  {name:>9}  {before:7.2f}  {startup:9.2f}  {phases:7.2f}  {after:6.2f}")
        previous = finished
    lines.append(
        f"  {'sum':>9}  {totals['before']:7.2f}  {totals['startup']:9.2f}  {'':>7}  {totals['after']:6.2f}"
        f"   + the end (collector, exit) {ended_at - previous:.2f}"
    )
    return lines


def worker_ready_s(out_dir: Path) -> str:
    """The warm worker's start, as the sweep logged it (`warm worker ready in X s`)."""
    for log_file in sorted(out_dir.glob("*/*.log")):
        for line in log_file.read_text(errors="replace").splitlines():
            if "warm worker ready in" in line:
                return line.split("warm worker ready in", 1)[1].split(" s", 1)[0].strip() + " s"
    return "not logged"


def run_sweep(isolation: str, out_dir: Path, extra: list[str]) -> tuple[float, list[dict]]:
    command = [
        sys.executable,
        "-m",
        "quantbench",
        *SWEEP,
        f"bench.isolation={isolation}",
        f"hydra.sweep.dir={out_dir}",
        "analysis.report_at_end=false",
        *extra,
    ]
    started = time.perf_counter()
    global STARTED_AT, ENDED_AT
    STARTED_AT = time.time()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "QUANTBENCH_ISOLATION": isolation}
    )
    ENDED_AT = time.time()
    wall_s = time.perf_counter() - started
    results = []
    for path in sorted(out_dir.glob("*/result.json"), key=lambda path: int(path.parent.name)):
        result = json.loads(path.read_text())
        result["job_dir_name"] = path.parent.name
        results.append(result)
    return wall_s, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", default="process", choices=("process", "spawn", "none"))
    parser.add_argument("--out", type=Path, help="the sweep directory (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra overrides, e.g. bench=quick")
    args = parser.parse_args()

    out_dir = args.out or Path(tempfile.mkdtemp(prefix="sweep-overhead-")) / "sweep"
    # Built once before timing: the sweep then measures the jobs, not the first model build.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "quantbench",
            "model=tiny-llama",
            "bench=quick",
            "batch=1",
            "bench.isolation=none",
            f"hydra.run.dir={out_dir.parent / 'warm-cache'}",
            "analysis.report_at_end=false",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall_s, results = run_sweep(args.isolation, out_dir, args.overrides)
    missing: set[str] = set()
    jobs_s = sum(job_seconds(result, missing) for result in results)
    statuses = [result["status"] for result in results]
    print(
        f"isolation={args.isolation}: {len(results)} jobs ({statuses.count('ok')} ok), sweep wall {wall_s:.1f} s, "
        f"jobs' own {' + '.join(PHASES)} {jobs_s:.1f} s, ratio {wall_s / jobs_s:.2f} (target <= 1.3)"
    )
    if missing:
        print(f"not recorded by every job (counted as 0): {', '.join(sorted(missing))}")
    for result in results:
        metrics = result.get("metrics") or {}
        # startup_s (process start to load) is part of the overhead, shown, not summed.
        phases = ", ".join(
            f"{name} {float(metrics[name]):.2f}" for name in ("startup_s", *PHASES) if metrics.get(name) is not None
        )
        print(f"  {result['identity']['precision']:>5} b{result['identity']['batch']}: {result['status']}: {phases}")
    print(f"where the overhead went, seconds (warm worker ready in {worker_ready_s(out_dir)} after its start):")
    print("\n".join(timeline(STARTED_AT, ENDED_AT, out_dir, results)))
    print(f"sweep directory: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
