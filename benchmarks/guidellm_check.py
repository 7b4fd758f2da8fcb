"""GuideLLM and quantbench's serving scenario against one `transformers serve`, peer_check.interleaved.

One `transformers serve` with continuous batching, started the way quantbench's transformers engine
starts it (quantbench/engines/transformers.py: same command, 127.0.0.1, quantbench's interpreter,
OMP_NUM_THREADS=hardware.threads), serves SmolLM2-135M fp32 (the model materialised in quantbench's
cache). Against it, level by level and round by round, alternating which tool goes first:

- GuideLLM (its own environment): `guidellm run` with a concurrent profile (N streams), synthetic
  prompts of --prompt-tokens tokens asking for --output-tokens tokens, --requests requests, no
  warm-up, JSON output;
- quantbench: `python -m quantbench scenario=serve engine=openai engine.url=<the server>` at the same
  concurrency, WikiText-2 articles cut to their last --prompt-tokens tokens (dataset.chat_template=false,
  so both tools send plain text to /v1/completions), the same max_tokens, --requests requests,
  serve.warmup_requests=0.

Output lengths. GuideLLM asks for an exact length with `ignore_eos: true`, which `transformers serve`
answers with HTTP 422 (its request schema has no such field). Both tools instead send the request
generation config quantbench's transformers engine sends (`generation_config` with no end-of-sequence
token, `TransformersEngine.request_options`), so the model cannot stop early: quantbench through
`engine.extra_body`, GuideLLM through its backend `extras`, which also set `ignore_eos` to null; GuideLLM
drops null fields from the request body before sending it (OpenAIHTTPBackend._prepare_resolve_request),
so the field is not sent. The table reports each tool's mean output and input tokens per request.

Prompts stay under the server's 256-token KV-cache page: continuous batching shares only complete pages
between requests (prefix sharing is on by default), so a prompt repeated across rounds is never served
from the cache.

Install GuideLLM in its own environment (never in quantbench's), then run from quantbench's .venv:

    python3 -m venv ~/.cache/quantbench-peers/guidellm-venv
    ~/.cache/quantbench-peers/guidellm-venv/bin/pip install guidellm==0.8.1
    QUANTBENCH_DATA=/work/shared/data python benchmarks/guidellm_check.py   # 1 and 4 users, 2 rounds
    python benchmarks/guidellm_check.py --users 1,4 --rounds 2 --requests 16 --prompt-tokens 128 \
        --output-tokens 32 --wikitext PATH/wikitext-2/test.txt --output docs/results/guidellm_transformers_serve.md

On a 2-core VM with SmolLM2-135M fp32 (8-13 output tokens/s) the defaults take about 10 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import peer_check

DEFAULT_OUTPUT = peer_check.ROOT / "docs" / "results" / "guidellm_transformers_serve.md"
GUIDELLM_VERSION = "0.8.1"  # the version this script's request settings were checked against
PEER_ENV = Path("~/.cache/quantbench-peers/guidellm-venv").expanduser()
INSTALL_COMMAND = f"python3 -m venv {PEER_ENV} && {PEER_ENV}/bin/pip install guidellm=={GUIDELLM_VERSION}"
CB_PAGE_TOKENS = 256  # transformers' ContinuousBatchingConfig.page_size default: prefix sharing reuses whole pages
SERVER_STARTUP_TIMEOUT_S = 600.0
REQUEST_TIMEOUT_S = 600.0
TOOLS = ("GuideLLM", "quantbench")
METRICS = (  # (key, label, digits): the figures compared, each tool's own definition (see the page)
    ("output_tokens_per_s", "output tok/s", 2),
    ("ttft_p50_ms", "TTFT p50 ms", 1),
    ("itl_p50_ms", "ITL p50 ms", 2),
    ("e2e_p50_ms", "E2E p50 ms", 1),
)


def guidellm_spec(args, url: str, model: str, users: int, fixed_length: dict[str, Any], output: Path) -> dict:
    """GuideLLM's scenario file: one concurrent benchmark at `users` streams."""
    return {
        "spec": {
            "backend": {
                "kind": "openai_http",
                "target": url,
                "model": model,
                "request_format": "/v1/completions",  # plain text, as quantbench sends with chat_template=false
                "timeout": REQUEST_TIMEOUT_S,
                # null fields are dropped from the body before sending: ignore_eos (HTTP 422 from
                # transformers serve) goes, the generation config that holds back the end of sequence comes.
                "extras": {"body": {"ignore_eos": None, **fixed_length}},
            },
            "profile": {"kind": "concurrent", "streams": [users]},
            "constraints": [{"kind": "max_requests", "count": args.requests}],
            "tokenizer": {"kind": "huggingface_auto", "model": model},
            "data": [
                {"kind": "synthetic_text", "prompt_tokens": args.prompt_tokens, "output_tokens": args.output_tokens}
            ],
            "seed": {"kind": "static", "value": args.seed},
            "outputs": [{"kind": "json", "path": str(output)}],
        }
    }


def _successful(summary: dict, statistic: str) -> float:
    """One statistic of the successful requests of a GuideLLM StatusDistributionSummary."""
    successful = summary["successful"]
    if statistic == "p50":
        return float(successful["percentiles"]["p50"])
    return float(successful[statistic])


def guidellm_figures(report: dict) -> dict[str, Any]:
    """The compared figures from GuideLLM's JSON report (its one benchmark)."""
    (benchmark,) = report["benchmarks"]
    metrics = benchmark["metrics"]
    totals = metrics["request_totals"]
    return {
        "output_tokens_per_s": _successful(metrics["output_tokens_per_second"], "mean"),
        # quantbench's definition over GuideLLM's window: all output tokens / the benchmark's duration
        "output_tokens_over_duration_per_s": metrics["output_token_count"]["successful"]["total_sum"]
        / benchmark["duration"],
        "ttft_p50_ms": _successful(metrics["time_to_first_token_ms"], "p50"),
        "itl_p50_ms": _successful(metrics["inter_token_latency_ms"], "p50"),
        "e2e_p50_ms": 1000.0 * _successful(metrics["request_latency"], "p50"),
        "output_tokens_mean": _successful(metrics["output_token_count"], "mean"),
        "input_tokens_mean": _successful(metrics["prompt_token_count"], "mean"),
        "n_ok": int(totals["successful"]),
        "n_failed": int(totals["errored"]) + int(totals["incomplete"]),
    }


def run_guidellm(args, url: str, model: str, users: int, fixed_length: dict[str, Any], directory: Path) -> dict:
    directory.mkdir(parents=True)
    scenario, output = directory / "scenario.json", directory / "benchmarks.json"
    scenario.write_text(json.dumps(guidellm_spec(args, url, model, users, fixed_length, output), indent=2))
    command = [str(args.guidellm), "run", "--scenario", str(scenario), "--disable-console-interactive"]
    # The tokenizer is the local model directory: nothing to fetch from the hub.
    wall_s = peer_check.run_child(command, directory / "guidellm.log", {"HF_HUB_OFFLINE": "1"})
    report = json.loads(output.read_text())
    figures = guidellm_figures(report)
    if figures["n_failed"]:
        (benchmark,) = report["benchmarks"]
        failed = benchmark["requests"]["errored"] or benchmark["requests"]["incomplete"]
        first = failed[0]["info"].get("error") if failed else "no request detail kept"
        raise RuntimeError(
            f"GuideLLM: {figures['n_failed']} of {args.requests} requests failed, e.g. {first} ({output})"
        )
    return figures | {"wall_s": wall_s}


def hydra_string_dict(values: dict[str, str]) -> str:
    """A Hydra override value for a dict of strings, each single-quoted (the values hold JSON)."""
    quoted = ("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'" for value in values.values())
    return "{" + ",".join(f"{key}:{value}" for key, value in zip(values, quoted)) + "}"


def run_quantbench(args, url: str, model: str, users: int, fixed_length: dict[str, Any], directory: Path) -> dict:
    overrides = [
        f"engine.model={model}",
        f"engine.extra_body={hydra_string_dict(fixed_length)}",
        f"model={args.model}",
        "precision=fp32",  # the row's label: an engine=openai endpoint serves what it was started with
        "dataset=wikitext2",
        f"dataset.path={args.wikitext}",
        "dataset.chat_template=false",
        f"bench.max_input_tokens={args.prompt_tokens}",
        f"bench.max_new_tokens={args.output_tokens}",
        f"bench.seed={args.seed}",
        f"serve.concurrency=[{users}]",
        f"serve.requests_per_level={args.requests}",
        "serve.warmup_requests=0",  # GuideLLM runs none either
        f"serve.request_timeout_s={REQUEST_TIMEOUT_S:g}",
    ]
    level, metrics, wall_s = peer_check.quantbench_level(url, overrides, directory)
    return {
        "output_tokens_per_s": level["output_tokens_per_s"],
        "ttft_p50_ms": level["ttft_p50_ms"],
        "itl_p50_ms": level["itl_p50_ms"],
        "tpot_p50_ms": level["tpot_p50_ms"],
        "e2e_p50_ms": level["e2e_p50_ms"],
        "output_tokens_mean": level["output_tokens_mean"],
        "input_tokens_mean": level["input_tokens_mean"],
        "n_ok": level["n_requests"] - level["n_failed_requests"],
        "n_failed": level["n_failed_requests"],
        "eos_ignored": metrics.get("eos_ignored"),
        "request_fields": metrics.get("request_fields"),
        "wall_s": wall_s,
    }


def warm_up(url: str, model: str, users: int, output_tokens: int, fixed_length: dict[str, Any]) -> None:
    """A few requests at the highest concurrency before the first measured level, so neither tool's
    first level meets a cold server (both tools run their levels without warm-up)."""
    from quantbench.engines.openai import Endpoint
    from quantbench.loadgen.client import new_session, send
    from quantbench.loadgen.prompts import Prompt

    endpoint = Endpoint(base_url=url, model=model)
    prompt = Prompt("warm-up", "The quick brown fox jumps over the lazy dog. " * 8, chat=False, input_tokens=0)

    async def go() -> list:
        async with new_session(REQUEST_TIMEOUT_S) as session:
            return await asyncio.gather(
                *(
                    send(session, endpoint, prompt, output_tokens, fixed_length, REQUEST_TIMEOUT_S)
                    for _ in range(2 * users)
                )
            )

    failed = [exchange.error for exchange in asyncio.run(go()) if exchange.error]
    if failed:
        raise RuntimeError(f"the server failed {len(failed)} warm-up requests: {failed[0]}")


def version_of(executable: list[str]) -> str:
    completed = subprocess.run(executable, capture_output=True, text=True, timeout=120, check=False)
    # `guidellm --version` prints "guidellm version: 0.8.1": its last word
    return (completed.stdout or completed.stderr).split()[-1] if completed.returncode == 0 else "unknown"


def mean_of(rows: list[dict], tool: str, users: int, key: str, round_index: int | None = None) -> float:
    values = [
        row[key]
        for row in rows
        if row["tool"] == tool and row["users"] == users and round_index in (None, row["round"])
    ]
    return statistics.fmean(values)


def comparison_row(rows: list[dict], users: int, label: str, guide_key: str, our_key: str, digits: int) -> str:
    """One figure: GuideLLM's and quantbench's means over the rounds, their ratio, and each round's ratio."""
    guide, ours = mean_of(rows, "GuideLLM", users, guide_key), mean_of(rows, "quantbench", users, our_key)
    rounds = sorted({row["round"] for row in rows})
    per_round = ", ".join(
        f"{mean_of(rows, 'quantbench', users, our_key, r) / mean_of(rows, 'GuideLLM', users, guide_key, r):.3f}"
        for r in rounds
    )
    return f"| {users} | {label} | {guide:.{digits}f} | {ours:.{digits}f} | {ours / guide:.3f} | {per_round} |"


def report(rows: list[dict], facts: dict[str, Any], args) -> str:
    users_levels = sorted({row["users"] for row in rows})
    setup = (
        f"GuideLLM {facts['guidellm']}, transformers "
        f"{facts['transformers']} (`transformers serve`, continuous batching, OMP_NUM_THREADS={facts['threads']}), "
        f"{args.model} fp32. {args.requests} requests per level and tool, {args.prompt_tokens} prompt tokens, "
        f"{args.output_tokens} output tokens, {args.rounds} rounds, the tools taking turns to go first. "
        f"Server: `{facts['server_command']}`."
    )
    lines = peer_check.measured_header("guidellm_check.py", facts, rows, setup)
    lines += [
        "",
        "Means over the rounds; the ratio is quantbench / GuideLLM, then each round's.",
        "",
        "| users | figure | GuideLLM | quantbench | ratio | ratio per round |",
        "| ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for users in users_levels:
        for key, label, digits in METRICS:
            lines.append(comparison_row(rows, users, label, key, key, digits))
        lines += [
            comparison_row(
                rows,
                users,
                "GuideLLM ITL p50 vs quantbench TPOT p50 ms (same definition)",
                "itl_p50_ms",
                "tpot_p50_ms",
                2,
            ),
            comparison_row(rows, users, "output tokens / request", "output_tokens_mean", "output_tokens_mean", 2),
            comparison_row(rows, users, "input tokens / request", "input_tokens_mean", "input_tokens_mean", 2),
        ]
    lines += [
        "",
        "Every run (in the order they ran):",
        "",
        "| round | users | tool | ok | failed | out tok/req | in tok/req | output tok/s | TTFT p50 ms | ITL p50 ms "
        "| TPOT p50 ms | E2E p50 ms | tool wall s | other CPU % | steal % |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        tpot = "" if row.get("tpot_p50_ms") is None else f"{row['tpot_p50_ms']:.2f}"
        lines.append(
            f"| {row['round']} | {row['users']} | {row['tool']} | {row['n_ok']} | {row['n_failed']} | "
            f"{row['output_tokens_mean']:.2f} | {row['input_tokens_mean']:.2f} | {row['output_tokens_per_s']:.2f} | "
            f"{row['ttft_p50_ms']:.1f} | {row['itl_p50_ms']:.2f} | {tpot} | {row['e2e_p50_ms']:.1f} | "
            f"{row['wall_s']:.0f} | {row['other_cpu_pct']:.1f} | {row['steal_pct']:.1f} |"
        )
    fields = sorted({str(row.get("request_fields")) for row in rows if row["tool"] == "quantbench"})
    eos = sorted({str(row.get("eos_ignored")) for row in rows if row["tool"] == "quantbench"})
    lines += [
        "",
        f"quantbench's probe kept the request fields `{', '.join(fields)}`; its `eos_ignored` (every request ended "
        f"for its length at max_tokens): {', '.join(eos)}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guidellm", type=Path, default=PEER_ENV / "bin" / "guidellm", help="GuideLLM's executable")
    parser.add_argument("--model", default="smollm2-135m", help="a quantbench model name (served fp32)")
    parser.add_argument("--users", default="1,4", help="concurrency levels, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=16, help="measured requests per level and tool")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--wikitext",
        type=Path,
        help="WikiText-2's test.txt for quantbench's prompts (default: quality.data_dir's, i.e. $QUANTBENCH_DATA)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where logs and each run's output go (default: a new temporary folder)"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="the results page whose '## Measured' section is rewritten"
    )
    args = parser.parse_args()
    if not args.guidellm.is_file():
        sys.exit(f"GuideLLM not found at {args.guidellm}; install it in its own environment: {INSTALL_COMMAND}")
    if args.prompt_tokens >= CB_PAGE_TOKENS:
        sys.exit(
            f"--prompt-tokens {args.prompt_tokens} fills a {CB_PAGE_TOKENS}-token KV-cache page, which continuous "
            "batching shares between requests with the same prefix: repeated prompts would skip their prefill; "
            f"use fewer than {CB_PAGE_TOKENS}"
        )
    users_levels = [int(users) for users in args.users.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="guidellm-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"logs and outputs: {workdir}", flush=True)

    import transformers

    from quantbench.engines.transformers import TransformersEngine
    from quantbench.loadgen.server import ServerProcess
    from quantbench.runtime.device import cpu_model_name

    cfg = peer_check.compose_config(["scenario=serve", "engine=transformers", f"model={args.model}", "precision=fp32"])
    weights = Path(peer_check.model_spec(cfg).load_path)
    if args.wikitext is None:
        args.wikitext = Path(cfg.quality.data_dir).expanduser() / "wikitext-2" / "test.txt"
    if not args.wikitext.is_file():
        sys.exit(f"WikiText-2 not found at {args.wikitext}; set QUANTBENCH_DATA or give --wikitext PATH/test.txt")
    engine = TransformersEngine()
    launch, url, threads = peer_check.launch_on_cpu(
        engine,
        cfg,
        weights,
        max_concurrency=max(users_levels),
        max_sequence_tokens=args.prompt_tokens + args.output_tokens,
    )
    # The one mechanism for exact lengths, as quantbench's transformers engine sends it.
    fixed_length = engine.request_options(args.output_tokens)
    facts: dict[str, Any] = {
        "cpu": cpu_model_name(),
        "cores": os.cpu_count(),
        "load_before": peer_check.load_average(),
        "guidellm": version_of([str(args.guidellm), "--version"]),
        "transformers": transformers.__version__,
        "threads": threads,
        "server_command": shlex.join(launch.command),
    }
    print(json.dumps(facts), flush=True)
    if facts["guidellm"] != GUIDELLM_VERSION:
        print(
            f"warning: GuideLLM {facts['guidellm']}; this script's request settings were checked with "
            f"{GUIDELLM_VERSION} (the output-length columns show whether they still hold)",
            flush=True,
        )
    rows: list[dict] = []
    runners = {"GuideLLM": run_guidellm, "quantbench": run_quantbench}
    with ServerProcess(launch.command, workdir / "server.log", {"OMP_NUM_THREADS": str(threads)}) as server:
        startup_s = server.wait_healthy(url + launch.health_path, SERVER_STARTUP_TIMEOUT_S)
        print(f"server healthy after {startup_s:.0f} s: {url}", flush=True)
        warm_up(url, launch.model_name, max(users_levels), args.output_tokens, fixed_length)
        for round_index, users, tool in peer_check.interleaved(args.rounds, users_levels, TOOLS):
            directory = workdir / f"r{round_index}-u{users}-{tool}"
            other = peer_check.OtherLoad(server.process.pid)
            figures = runners[tool](args, url, launch.model_name, users, fixed_length, directory)
            server.check_running()
            row = {"round": round_index, "users": users, "tool": tool, **figures, **other.shares_pct()}
            rows.append(row)
            print(json.dumps(row), flush=True)
    facts["load_after"] = peer_check.load_average()
    (workdir / "rows.json").write_text(json.dumps({"facts": facts, "rows": rows}, indent=2))
    measured = report(rows, facts, args)
    print(measured)
    peer_check.write_page(args.output, "GuideLLM against quantbench on `transformers serve`", measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
