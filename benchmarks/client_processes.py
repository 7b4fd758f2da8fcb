"""How many streams and chunks per second do quantbench's client processes read per core?

The clock endpoint of benchmarks/client_overhead.py (one chunk every `--interval-ms`, stamped with
its emission time) runs pinned to one core; the serving driver itself (quantbench.loadgen.driver:
run_levels, closed-loop levels, `serve.client_processes`) drives it from the other core, with 1 and
with 2 client processes: the processes inherit this script's pinning, so both counts share one core.
Per level: chunks/s, the client's ITL p50/p99 and the delivery lag (arrival minus emission). The
client keeps up while its ITL p50 stays within 1 ms of the interval and its lag p50 within 5 ms (a
client that falls behind evenly keeps its gaps and loses time: the lag shows it).

What it shows on a 2-core machine: the chunks one core reads, and what splitting a level over two
processes costs on that core (their coordination: a message per request, none per chunk). More cores
than the server needs are what more processes turn into more chunks per second; this machine has none
to spare, so the scaling itself is not measured here.

    python benchmarks/client_processes.py                        # 20 ms, 64..512 streams, 1 and 2 processes
    python benchmarks/client_processes.py --levels 64 --repeats 1 --output /tmp/x.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from client_overhead import TOLERANCE_MS, free_port, median_row, pin

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "results" / "client_processes.md"
MAX_LAG_MS = 5.0  # median arrival minus emission of a client that keeps up


class Quiet:
    def tick(self, *args, **kwargs) -> None:
        pass


def measure(port: int, processes: int, users: int, requests: int, tokens: int) -> dict:
    """One closed-loop level of `users` streams through the serving driver with `processes` processes."""
    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.driver import LoadPlan, run_levels
    from quantbench.loadgen.load import Level
    from quantbench.loadgen.profiles import FixedLevels
    from quantbench.loadgen.prompts import Prompt

    plan = LoadPlan(
        endpoint=Endpoint(base_url=f"http://127.0.0.1:{port}", model="clock"),
        options={},
        max_tokens=tokens,
        timeout_s=120.0,
        seed=0,
        requests_per_level=requests,
        duration_s=None,
        warmup_requests=1,  # one per user: every connection open before the measured requests
        client_processes=processes,
        saturation=None,
    )
    prompts = [Prompt(f"p{index}", "tick", chat=True, input_tokens=1) for index in range(requests)]
    runs: list = []
    started = time.perf_counter()
    facts = run_levels(plan, FixedLevels([Level(0, concurrency=users)]), prompts, runs, Quiet(), None, lambda run: {})
    wall_s = time.perf_counter() - started
    [run] = runs
    client_gaps, lags = [], []
    for exchange in run.exchanges:
        if exchange.error:
            continue
        emitted = [float(stamp) for stamp in exchange.text.split()]
        if len(emitted) != len(exchange.arrivals):  # coalesced chunks: compare what can be paired
            continue
        client_gaps += list(np.diff(exchange.arrivals) * 1e3)
        lags += [(arrival - stamp) * 1e3 for arrival, stamp in zip(exchange.arrivals, emitted)]
    percentile = lambda values, q: float(np.percentile(values, q)) if values else float("nan")  # noqa: E731
    return {
        "processes": processes,
        "users": users,
        "requests": len(run.exchanges),
        "failed": sum(bool(exchange.error) for exchange in run.exchanges),
        "chunks_per_s": sum(len(exchange.arrivals) for exchange in run.exchanges) / run.duration_s,
        "client_itl_p50_ms": percentile(client_gaps, 50),
        "client_itl_p99_ms": percentile(client_gaps, 99),
        "lag_p50_ms": percentile(lags, 50),
        "lag_p99_ms": percentile(lags, 99),
        "start_s": facts.get("client_processes_start_s", 0.0),
        "wall_s": wall_s,
    }


def report(rows: list[dict], args: argparse.Namespace, load: tuple[float, float]) -> str:
    lines = [
        "# Client processes: streams and chunks per second per core",
        "",
        f"`python benchmarks/client_processes.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"The clock endpoint of client_overhead.py emits one chunk every {args.interval_ms:g} ms ({args.tokens} per "
        "request), pinned to core 1; quantbench's serving driver",
        "(run_levels, closed loop, `serve.client_processes`) drives it with its client processes pinned to core 0,",
        "all of them on that one core. ITL is the gap between chunk arrivals at the client; lag is arrival minus",
        f"emission. The client keeps up while its ITL p50 is within {TOLERANCE_MS:g} ms of the interval and its lag "
        f"p50 within {MAX_LAG_MS:g} ms.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} before, {load[1]:.1f} after (a shared machine: "
        "other work on core 0 lowers these figures).",
        "",
        "| processes | streams | requests (all repeats) | failed | chunks/s | client ITL p50 ms | client ITL p99 ms "
        "| lag p50 ms | lag p99 ms |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['processes']} | {row['users']} | {row['requests']} | {row['failed']} | "
            f"{row['chunks_per_s']:.0f} | {row['client_itl_p50_ms']:.2f} | {row['client_itl_p99_ms']:.2f} | "
            f"{row['lag_p50_ms']:.2f} | {row['lag_p99_ms']:.2f} |"
        )
    lines.append("")
    for processes in sorted({row["processes"] for row in rows}):
        ok = [
            row
            for row in rows
            if row["processes"] == processes
            and not row["failed"]
            and abs(row["client_itl_p50_ms"] - args.interval_ms) <= TOLERANCE_MS
            and row["lag_p50_ms"] <= MAX_LAG_MS
        ]
        sustained = max((row["users"] for row in ok), default=0)
        start = np.median([row["start_s"] for row in rows if row["processes"] == processes])
        lines.append(
            f"- {processes} process{'es' if processes > 1 else ''} on one core: at most **{sustained} streams** "
            f"({sustained * 1000 / args.interval_ms:.0f} chunks/s) kept up with"
            + (f"; starting them took {start:.2f} s" if processes > 1 else "")
            + "."
        )
    lines += [
        "",
        "Reading it: each row is the median of the level's repeats. Past a core's capacity chunks queue in the",
        "socket and arrive in bursts (ITL p50 falls towards 0, the lag grows), and the level measures the client,",
        "not the server. Splitting a level over processes costs a message per request and nothing per chunk, so",
        "where two processes on one core read what one does, each core given to a client process adds one core's",
        "worth of streams (cores the server does not need).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=50, help="chunks per request")
    parser.add_argument("--levels", default="64,128,192,256,320", help="concurrent streams, comma-separated")
    parser.add_argument("--processes", default="1,2", help="client process counts, comma-separated")
    parser.add_argument("--requests-per-user", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per level; the table shows their medians")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "client_overhead.py"), "--serve", str(port), "--interval-ms",
         str(args.interval_ms)]
    )  # fmt: skip
    try:
        from quantbench.loadgen.server import wait_healthy

        wait_healthy(f"http://127.0.0.1:{port}/health", 30.0)
        pin(0)
        rows = []
        for processes in (int(value) for value in args.processes.split(",")):
            for users in (int(level) for level in args.levels.split(",")):
                runs = [
                    measure(port, processes, users, users * args.requests_per_user, args.tokens)
                    for _ in range(args.repeats)
                ]
                row = median_row(runs) | {"processes": processes, "users": users}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait()
    text = report(rows, args, (load_before, os.getloadavg()[0]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
