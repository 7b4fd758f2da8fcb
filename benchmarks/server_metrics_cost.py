"""What does scraping a server's /metrics cost? Client time per GET, the server's CPU per scrape, and
the parse, measured against a running server (vLLM, llama-server) by quantbench's own scraper code.

The server's CPU is read from /proc through psutil: its process and children (vLLM's API server
renders /metrics; llama-server answers it from its task loop) before and after `--scrapes`
back-to-back scrapes of an idle server, so the difference is what the scrapes cost it. Divided by
serve.metrics_interval_s it is the share of one core that scraping takes from the server. The
client's CPU per GET (thread time) is what the scraping thread takes from the load's process; the
parse runs between levels, not during them.

    python benchmarks/server_metrics_cost.py --url http://127.0.0.1:8000 --pid 1234 --scrapes 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psutil

from quantbench.loadgen.server_metrics import METRICS_PATH, SCRAPE_TIMEOUT_S, fetch, parse_samples


def server_cpu_s(process: psutil.Process) -> float:
    processes = [process, *process.children(recursive=True)]
    total = 0.0
    for each in processes:
        try:
            times = each.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def measure(url: str, pid: int, scrapes: int) -> dict[str, float]:
    process = psutil.Process(pid)
    walls, gets_cpu, parses, sizes, samples = [], [], [], [], []
    cpu_before = server_cpu_s(process)
    for _ in range(scrapes):
        began, began_cpu = time.perf_counter(), time.thread_time()
        status, body = fetch(url + METRICS_PATH, {}, SCRAPE_TIMEOUT_S)
        walls.append((time.perf_counter() - began) * 1e3)
        gets_cpu.append((time.thread_time() - began_cpu) * 1e3)
        if status != 200:
            raise SystemExit(f"GET {url}{METRICS_PATH} answered {status}: {body[:200]}")
        began = time.perf_counter()
        samples.append(len(parse_samples(body)))
        parses.append((time.perf_counter() - began) * 1e3)
        sizes.append(len(body.encode()))
    cpu_ms = (server_cpu_s(process) - cpu_before) * 1e3 / scrapes
    walls.sort()
    return {
        "scrapes": scrapes,
        "get_ms_p50": statistics.median(walls),
        "get_ms_p99": walls[min(len(walls) - 1, int(0.99 * len(walls)))],
        "server_cpu_ms_per_scrape": cpu_ms,
        "client_cpu_ms_per_get_p50": statistics.median(gets_cpu),
        "parse_ms_p50": statistics.median(parses),
        "body_kb": statistics.median(sizes) / 1e3,
        "samples": statistics.median(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's root (where /v1 and /metrics live)")
    parser.add_argument("--pid", type=int, required=True, help="the server's process id")
    parser.add_argument("--scrapes", type=int, default=200)
    options = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    result = measure(options.url.rstrip("/"), options.pid, options.scrapes)
    print(f"load average before: {load}")
    for key, value in result.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    for interval_s in (0.25, 0.5, 1.0):
        share = result["server_cpu_ms_per_scrape"] / (interval_s * 1e3) * 100
        print(f"serve.metrics_interval_s={interval_s:g}: {share:.2f} % of one server core")


if __name__ == "__main__":
    main()
