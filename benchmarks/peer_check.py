"""What the checks of quantbench's serving client against a peer tool share (guidellm_check.py,
vllm_bench_serve.py): the config and model as the app resolves them, a tool run to completion in its
own process group, quantbench's serving job against a server's URL read back as its one level, the
interleaved order of the runs, what else loaded the machine meanwhile, and the results page whose
`## Measured` section a run rewrites.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 900.0  # one tool at one level; far above what a level takes here


def compose_config(overrides: list[str]):
    """quantbench's config as the app composes it."""
    from hydra import compose

    from quantbench.config.compose import config_loader

    with config_loader():
        return compose(config_name="config", overrides=overrides)


def model_spec(cfg):
    """The model's ModelSpec; its directory is materialised in quantbench's cache now on a miss."""
    from quantbench.cache import cache_root
    from quantbench.config import registry
    from quantbench.models.source import resolve_model

    family = registry.families().get(cfg.model.family)
    return resolve_model(cfg.model, family, cache_root(cfg.cache_dir))


def run_child(command: list[str], log_file: Path, environment: dict[str, str] | None = None) -> float:
    """Run one tool to completion in its own process group (stopped with everything it started, on
    every way out, and killed by the kernel if this script dies); its wall time in s. RuntimeError
    quoting the log's end when it fails."""
    from quantbench.runtime.processes import die_with_parent, stop_process_group

    started = time.perf_counter()
    with open(log_file, "wb") as log:
        log.write(f"$ {shlex.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(environment or {})},
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
        try:
            code = process.wait(timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_process_group(process)
    if code != 0:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-15:]
        what = f"timed out after {CHILD_TIMEOUT_S:g} s" if code is None else f"exited with {code}"
        raise RuntimeError(f"{command[0]} {what}; end of {log_file}:\n" + "\n".join(tail))
    return time.perf_counter() - started


def quantbench_level(url: str, overrides: list[str], directory: Path) -> tuple[dict, dict, float]:
    """`python -m quantbench scenario=serve engine=openai engine.url=URL <overrides>` (one concurrency
    level) with its run in `directory`: (its one level, the job's metrics, its wall time in s).
    RuntimeError when the job is not ok or a request failed."""
    directory.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "quantbench",
        "scenario=serve",
        "engine=openai",
        f"engine.url={url}",
        *overrides,
        f"hydra.run.dir={directory}",
    ]
    wall_s = run_child(command, directory.parent / f"{directory.name}.log", {"HF_HUB_OFFLINE": "1"})
    result = json.loads((directory / "result.json").read_text())
    if result.get("status") != "ok":
        raise RuntimeError(f"quantbench's job ended {result.get('status')}: {result.get('reason')} ({directory})")
    (level,) = result["metrics"]["levels"]
    if level["n_failed_requests"]:
        raise RuntimeError(
            f"quantbench: {level['n_failed_requests']} of {level['n_requests']} requests failed ({directory})"
        )
    return level, result["metrics"], wall_s


def interleaved(rounds: int, levels: Sequence[int], tools: Sequence[str]) -> Iterator[tuple[int, int, str]]:
    """(round, counted from 1; users; tool) for every run: each round goes through the levels, the two
    tools taking turns to go first (tools[0] first at round 1's first level), so a drift of the machine
    weighs on both alike."""
    for round_index in range(1, rounds + 1):
        for level_index, users in enumerate(levels):
            order = tools if (round_index + level_index) % 2 else tools[::-1]
            for tool in order:
                yield round_index, users, tool


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def machine_cpu_s() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, all cores (/proc/stat's first line)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks_per_s, steal / ticks_per_s


def own_cpu_s(server_pid: int) -> float:
    """CPU seconds of this script, the tools it ran and waited for, and the server's process tree."""
    import psutil

    mine = os.times()
    total_s = mine.user + mine.system + mine.children_user + mine.children_system
    server = psutil.Process(server_pid)
    for process in [server, *server.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total_s += times.user + times.system
    return total_s


class OtherLoad:
    """What else ran on the machine during one run: the CPU time used by processes other than the
    server, the tool and this script, and the time the hypervisor took away (steal), each as a share
    of all cores over the run. The check compares two clients of one server; a busy neighbour slows
    the server for one of them only."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.started_s = time.perf_counter()
        self.busy_s, self.steal_s = machine_cpu_s()
        self.own_s = own_cpu_s(server_pid)

    def shares_pct(self) -> dict[str, float]:
        wall_s = time.perf_counter() - self.started_s
        busy_s, steal_s = machine_cpu_s()
        other_s = (busy_s - self.busy_s) - (own_cpu_s(self.server_pid) - self.own_s)
        capacity_s = wall_s * (os.cpu_count() or 1)
        return {
            "other_cpu_pct": max(0.0, 100 * other_s / capacity_s),
            "steal_pct": 100 * (steal_s - self.steal_s) / capacity_s,
        }


def splice(page: Path, title: str, measured: str) -> str:
    """The page with its `## Measured` section (from that heading to the next `## `) replaced by
    `measured`, so the prose around it survives a rerun; a missing page is created with `title`."""
    if not page.exists():
        return f"# {title}\n\n{measured}"
    text = page.read_text()
    start = text.find("\n## Measured\n") + 1
    if start == 0:
        return text.rstrip("\n") + "\n\n" + measured
    end = text.find("\n## ", start)
    return text[:start] + measured + ("" if end < 0 else text[end:])


def write_page(page: Path, title: str, measured: str) -> None:
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(splice(page, title, measured))
    print(f"wrote {page}")


def launch_on_cpu(engine, cfg, weights: Path, **load):
    """The engine's server for `weights` on this machine's CPU, as scenario=serve starts it: a free
    loopback port, the job's thread count. (its ServerLaunch, its base URL, the threads)."""
    from quantbench.engines.base import ServerRequest
    from quantbench.loadgen.server import LOOPBACK, free_port
    from quantbench.runtime.device import resolve_device
    from quantbench.runtime.threads import job_threads

    port = free_port()
    threads = job_threads(cfg.hardware)
    request = ServerRequest(
        weights=str(weights),
        precision=cfg.precision,
        engine=cfg.engine,
        device=resolve_device("cpu"),
        host=LOOPBACK,
        port=port,
        seed=int(cfg.bench.seed),
        threads=threads,
        **load,
    )
    return engine.launch(request), f"http://{LOOPBACK}:{port}", threads


def measured_header(script: str, facts: dict, runs: list[dict], setup: str) -> list[str]:
    """The `## Measured` section's first lines: the command as run, then the machine, the load
    average before and after (facts' cpu, cores, load_before, load_after), the other processes' CPU
    over the runs, and `setup` (what ran, in the script's words)."""
    other = sorted(round(run["other_cpu_pct"]) for run in runs)
    return [
        "## Measured",
        "",
        f"`python benchmarks/{script} {shlex.join(sys.argv[1:])}`".replace(" `", "`"),
        "",
        f"Machine: {facts['cpu']}, {facts['cores']} cores, no GPU; load average (1, 5, 15 min) before: "
        f"{facts['load_before']}, after: {facts['load_after']}; other processes' CPU during the runs: "
        f"{min(other)}-{max(other)} % of the machine (per run below). {setup}",
    ]
