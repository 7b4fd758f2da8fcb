"""Does quantbench's llama.cpp offline job measure what llama-bench measures on the same file?

llama-bench (llama.cpp's own benchmark, from the tools `quantbench engines install llama.cpp`
builds) and quantbench's llama.cpp offline job on the same cached GGUF file, at the same threads and
batch 1, the same prompt length and generation length, interleaved round by round in one session so
both see the same machine:

- pp (prompt processing, tokens/s): quantbench's `prompt_tokens_per_s` (prompt tokens ÷ the time
  until the first token, whose prefill is one llama_decode) against `llama-bench -p N -n 0`, N the
  job's prompt length, with llama-bench's batch and micro-batch set to N as quantbench's context has them.
- tg (generation, tokens/s): quantbench's `generation_tokens_per_s` (the M - 1 tokens after the first
  ÷ the time after the first token) against `llama-bench -p 0 -n M-1 -d N`: M - 1 single-token decodes
  on top of an N-token context, as the job decodes after its prompt.

Target: quantbench / llama-bench >= 0.95 for both.

    python benchmarks/llama_bench_check.py                            # SmolLM2-135M gguf-q4_k_m
    python benchmarks/llama_bench_check.py --dataset pubmedqa --set dataset.path=$QUANTBENCH_DATA/pubmedqa/ori_pqal.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness_overhead import llama_cpp_arm  # a sibling script (benchmarks/ is on sys.path when run)
from hydra import compose, initialize_config_module

from quantbench.cache import cache_root
from quantbench.config import registry
from quantbench.config.schema import register_configs
from quantbench.gguf.tools import tool_path
from quantbench.job.run import run_job
from quantbench.models.source import resolve_model
from quantbench.runtime.threads import job_threads

TARGET_RATIO = 0.95


def llama_bench(binary: Path, path: Path, threads: int, reps: int, args: list[str]) -> dict:
    """One llama-bench test (its JSON record): avg_ts and stddev_ts over `reps` runs after its warm-up."""
    command = [str(binary), "-m", str(path), "-t", str(threads), "-r", str(reps), "-o", "json", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"llama-bench failed ({' '.join(command)}): {done.stderr.strip().splitlines()[-1:]}")
    records = json.loads(done.stdout)
    if len(records) != 1:
        raise SystemExit(f"expected one llama-bench test, got {len(records)}: {' '.join(command)}")
    return {**records[0], "command": " ".join(command)}


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="gguf-q4_k_m")
    parser.add_argument("--dataset", default="builtin", help="the job's prompts (sample 0 is the prompt)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-input-tokens", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=10, help="the job's timed iterations per round")
    parser.add_argument("--reps", type=int, default=5, help="llama-bench's repetitions per test and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="hardware.threads for both (default: the job's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another override of the job")
    args = parser.parse_args()

    register_configs()
    overrides = [
        f"model={args.model}",
        f"precision={args.precision}",
        f"dataset={args.dataset}",
        "batch=1",
        "hardware=cpu",
        f"bench.max_new_tokens={args.max_new_tokens}",
        f"bench.max_input_tokens={args.max_input_tokens}",
        f"bench.min_iterations={args.iterations}",
        f"bench.max_iterations={args.iterations}",
        "bench.min_seconds=0",
        "bench.warmup_iterations=2",
        *([f"hardware.threads={args.threads}"] if args.threads else []),
        *args.set,
    ]
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    if cfg.precision.get("engine") != "llama.cpp":
        print(f"precision {args.precision} is not a GGUF type run by llama.cpp", file=sys.stderr)
        return 2
    family = registry.families().get(cfg.model.family)
    spec = resolve_model(cfg.model, family, cache_root(cfg.cache_dir))
    threads = job_threads(cfg.hardware)
    binary = tool_path(cache_root(cfg.cache_dir), "llama-bench")
    path, prompt = llama_cpp_arm(cfg, family, spec)  # the file the job opens, its prompt as the job tokenizes it
    n_prompt = len(prompt)
    n_gen = args.max_new_tokens - 1  # tg: the tokens after the first, as the job counts them
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"file: {path}\nprompt {n_prompt} tokens, {args.max_new_tokens} new tokens, threads {threads}, batch 1")

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            load_before = load_average()
            pp = llama_bench(
                binary,
                path,
                threads,
                args.reps,
                ["-p", str(n_prompt), "-n", "0", "-b", str(n_prompt), "-ub", str(n_prompt)],
            )
            tg = llama_bench(binary, path, threads, args.reps, ["-p", "0", "-n", str(n_gen), "-d", str(n_prompt)])
            result = run_job(cfg, Path(scratch) / f"round-{round_index}")
            if result.status != "ok":
                print(f"quantbench job {result.status}: {result.reason}", file=sys.stderr)
                return 1
            metrics = result.metrics
            if metrics.get("input_tokens_per_iteration") != n_prompt:
                print(
                    f"the job's prompt has {metrics.get('input_tokens_per_iteration')} tokens, not {n_prompt}",
                    file=sys.stderr,
                )
                return 1
            row = {
                "round": round_index,
                "load_average": load_before,
                "llama_bench_pp": float(pp["avg_ts"]),
                "llama_bench_pp_sd": float(pp["stddev_ts"]),
                "llama_bench_tg": float(tg["avg_ts"]),
                "llama_bench_tg_sd": float(tg["stddev_ts"]),
                "quantbench_pp": float(metrics["prompt_tokens_per_s"]),
                "quantbench_tg": float(metrics["generation_tokens_per_s"]),
            }
            row["pp_ratio"] = row["quantbench_pp"] / row["llama_bench_pp"]
            row["tg_ratio"] = row["quantbench_tg"] / row["llama_bench_tg"]
            rows.append(row)
            print(
                f"round {round_index} (load {load_before}): pp llama-bench {row['llama_bench_pp']:.1f} "
                f"± {row['llama_bench_pp_sd']:.1f}, quantbench {row['quantbench_pp']:.1f} -> {row['pp_ratio']:.3f}; "
                f"tg llama-bench {row['llama_bench_tg']:.2f} ± {row['llama_bench_tg_sd']:.2f}, "
                f"quantbench {row['quantbench_tg']:.2f} -> {row['tg_ratio']:.3f}",
                flush=True,
            )
    print(f"llama-bench commands: {pp['command']}\n                      {tg['command']}")
    print(f"llama-bench build: {pp.get('build_commit')} ({pp.get('build_number')}), cpu_info {pp.get('cpu_info')}")
    print(f"load average after: {load_average()}  ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})")
    ok = True
    for name in ("pp", "tg"):
        ratios = [row[f"{name}_ratio"] for row in rows]
        median = statistics.median(ratios)
        ok = ok and median >= TARGET_RATIO
        print(
            f"{name}: quantbench / llama-bench median {median:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}) "
            f"over {len(ratios)} rounds; target >= {TARGET_RATIO}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
