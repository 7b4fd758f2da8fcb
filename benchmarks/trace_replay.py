"""How late does a replayed trace go out? The send-time error of quantbench's open loop at 10 and 100 req/s.

The shipped trace (benchmarks/traces/synthetic_trace.jsonl: bursty arrivals, log-normal lengths,
conversations) is replayed, its times scaled to a mean rate of 10 and of 100 requests per second,
through quantbench's own open loop (quantbench.loadgen.load.open_loop, the conversations' later turns
included) against a loopback endpoint that streams each request's output_tokens one chunk every
`--interval-ms` (benchmarks/client_overhead.py's clock endpoint, in a child process on its own
core; the client on another). The send-time error of a request is its actual send (just before the
HTTP request is written) minus its scheduled time; a conversation's later turn is due when the turn
before it ended. The client process holds torch and transformers (a serving job's heap), and runs each
replay as a serving job runs a level, collector off (quantbench.loadgen.clock.level_gc), and also with
Python's default collector for comparison. Target: p99 below 5 ms.

    flock /tmp/qb-cpu.lock python benchmarks/trace_replay.py
    python benchmarks/trace_replay.py --rates 100 --repeats 1 --output /tmp/x.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from client_overhead import free_port, pin  # noqa: E402  (the clock endpoint's helpers, beside this file)

ROOT = HERE.parent
DEFAULT_TRACE = HERE / "traces" / "synthetic_trace.jsonl"
DEFAULT_OUTPUT = ROOT / "docs" / "results" / "trace_replay.md"
TARGET_P99_MS = 5.0
STALL_MS = 5.0  # a gap of the event loop this long is counted as a stall


def schedule(trace: Path, rate: float):
    """The trace's arrivals at a mean rate of `rate` requests per second (prompts of output_tokens each)."""
    from quantbench.loadgen.load import Arrival
    from quantbench.loadgen.prompts import Prompt
    from quantbench.loadgen.synthetic import conversations
    from quantbench.loadgen.trace import read_trace

    requests = read_trace(trace)
    speed = rate * requests[-1].arrival_s / len(requests)  # the trace's own mean rate -> `rate`
    prompts = [
        Prompt(
            id=f"line{r.line}",
            text="tick",
            chat=True,
            input_tokens=1,
            max_tokens=r.output_tokens,
            conversation=r.conversation,
        )
        for r in requests
    ]
    at = {f"line{r.line}": r.arrival_s / speed for r in requests}
    return [
        Arrival(at[prompt.id], prompt, tuple(at[turn.id] for turn in prompt.turns)) for prompt in conversations(prompts)
    ], speed


async def replay(port: int, arrivals) -> tuple[list, list[tuple[float, float]]]:
    """The exchanges, and the event loop's stalls: (wall ms, of which the process ran ms) of every gap
    over STALL_MS between two ticks of a 1 ms ticker. A stall the process did not run for was the
    operating system's (another process on the core), one it ran for the client's own work."""
    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.client import new_session, send
    from quantbench.loadgen.load import Budget, open_loop

    endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}", model="clock")
    stalls: list[tuple[float, float]] = []

    async def ticker() -> None:
        wall, ran = time.perf_counter(), time.process_time()
        while True:
            await asyncio.sleep(0.001)
            now, now_ran = time.perf_counter(), time.process_time()
            if (now - wall) * 1e3 > STALL_MS:
                stalls.append(((now - wall) * 1e3, (now_ran - ran) * 1e3))
            wall, ran = now, now_ran

    async with new_session(120.0) as session:

        async def one(prompt):
            return await send(session, endpoint, prompt, 16, {}, 120.0)

        ticking = asyncio.ensure_future(ticker())
        try:
            return await open_loop(one, iter(arrivals), Budget(None, None)), stalls
        finally:
            ticking.cancel()


def percentiles(values: list[float]) -> dict:
    array = np.asarray(values)
    return {
        "n": len(array),
        "p50_ms": float(np.percentile(array, 50)),
        "p99_ms": float(np.percentile(array, 99)),
        "max_ms": float(array.max()),
    }


def measure(port: int, trace: Path, rate: float, repeats: int, collector: str) -> dict:
    """The replays' send-time errors; `collector`: `level_gc` as a serving job runs its levels
    (quantbench.loadgen.clock), or `on` (Python's default, for comparison)."""
    from quantbench.loadgen.clock import level_gc

    arrivals, speed = schedule(trace, rate)
    first_turns = {arrival.prompt.id for arrival in arrivals}
    scheduled, later, failed, chunks, busy_s, stalls = [], [], 0, 0, 0.0, []
    for _ in range(repeats):
        with level_gc() if collector == "level_gc" else nullcontext():
            exchanges, found = asyncio.run(replay(port, arrivals))
        stalls += found
        for exchange in exchanges:
            failed += exchange.error is not None
            lag_ms = (exchange.sent_at - exchange.scheduled_at) * 1e3
            (scheduled if exchange.prompt_id in first_turns else later).append(lag_ms)
            chunks += len(exchange.arrivals)
        busy_s += max(e.finished_at for e in exchanges) - min(e.sent_at for e in exchanges)
    return {
        "rate": rate,
        "collector": collector,
        "speed": speed,
        "failed": failed,
        "chunks_per_s": chunks / busy_s,
        "scheduled": percentiles(scheduled),
        "later_turns": percentiles(later),
        "stalls": len(stalls),
        "stall_off_cpu_pct": 100 * (1 - sum(r for _, r in stalls) / sum(w for w, _ in stalls)) if stalls else None,
        "load_average": os.getloadavg()[0],
    }


def report(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "# Trace replay: the open loop's send-time error",
        "",
        f"`python benchmarks/trace_replay.py {' '.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"The shipped trace ({args.trace.relative_to(ROOT)}, made by benchmarks/traces/make_trace.py: 371",
        "requests, bursty arrivals, log-normal lengths, conversations) replayed at a mean rate of 10 and 100",
        "requests per second through quantbench's open loop, against a loopback endpoint streaming each",
        f"request's output_tokens one chunk every {args.interval_ms:g} ms (client and endpoint pinned to a core each).",
        "The client process holds "
        + ("torch, transformers and a tokenizer, as a serving job's does" if args.app_heap else "no model libraries")
        + ". Send-time error = actual send (just before the request is written) minus scheduled send.",
        "*Scheduled*: the trace's arrivals (every request but a conversation's later turns); *later turns*:",
        "due when the turn before them ended. `collector`: `level_gc` is what a serving job does in a level",
        "(collection off, the heap frozen: quantbench/loadgen/clock.py), `on` Python's default.",
        f"Target: p99 of the scheduled arrivals below {TARGET_P99_MS:g} ms. Loop stalls: gaps over {STALL_MS:g} ms",
        "between ticks of a 1 ms ticker in the client's event loop, and the share of their time the client",
        "process was not running (preempted by another process: the machine's, not the client's, delay).",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
        f"Python {platform.python_version()}; a shared machine, run under `flock /tmp/qb-cpu.lock`.",
        "",
        "| mean rate req/s | collector | time scale | scheduled n | p50 ms | p99 ms | max ms | later turns n "
        "| p50 ms | p99 ms | chunks/s | loop stalls > 5 ms | their time off CPU | failed | load average (1 min) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        s, t = row["scheduled"], row["later_turns"]
        lines.append(
            f"| {row['rate']:g} | {row['collector']} | {row['speed']:.2f} | {s['n']} | {s['p50_ms']:.3f} | "
            f"{s['p99_ms']:.3f} | {s['max_ms']:.3f} | {t['n']} | {t['p50_ms']:.3f} | {t['p99_ms']:.3f} | "
            f"{row['chunks_per_s']:.0f} | {row['stalls']} | "
            + ("-" if row["stall_off_cpu_pct"] is None else f"{row['stall_off_cpu_pct']:.0f} %")
            + f" | {row['failed']} | {row['load_average']:.2f} |"
        )
    lines.append("")
    for row in rows:
        if row["collector"] == "level_gc":
            met = row["scheduled"]["p99_ms"] < TARGET_P99_MS
            lines.append(f"- {row['rate']:g} req/s: p99 < {TARGET_P99_MS:g} ms **{'met' if met else 'missed'}**")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--rates", default="10,100", help="mean requests per second, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="replays of the trace per rate, pooled")
    parser.add_argument("--collectors", default="level_gc,on", help="garbage-collector policies to compare")
    parser.add_argument(
        "--no-app-heap", dest="app_heap", action="store_false", help="leave torch and transformers out of the client"
    )
    parser.add_argument("--interval-ms", type=float, default=20.0, help="the endpoint's time between chunks")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    args.trace = args.trace.resolve()
    port = free_port()
    endpoint = subprocess.Popen(
        [sys.executable, str(HERE / "client_overhead.py"), "--serve", str(port), "--interval-ms", str(args.interval_ms)]
    )
    try:
        from quantbench.loadgen.server import wait_healthy

        wait_healthy(f"http://127.0.0.1:{port}/health", 30.0)
        pin(0)
        if args.app_heap:  # the heap a serving job's process has: what a full collection must scan
            import torch  # noqa: F401
            from transformers import AutoTokenizer  # noqa: F401
        rows = []
        for rate in (float(value) for value in args.rates.split(",")):
            for collector in args.collectors.split(","):
                started = time.perf_counter()
                rows.append(measure(port, args.trace, rate, args.repeats, collector))
                print(json.dumps(rows[-1] | {"elapsed_s": time.perf_counter() - started}), flush=True)
    finally:
        endpoint.terminate()
        endpoint.wait()
    text = report(rows, args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
