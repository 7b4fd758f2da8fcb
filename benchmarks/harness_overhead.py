"""How much does quantbench's job code cost over a bare generate() loop?

Times the same greedy workload two ways, interleaved round by round in one process so that
both see the same machine state: a hand-written loop around `model.generate`, and quantbench's
`run_job`. Prints the ratio of the tokens/s each reports (target: >= 0.98). For a GGUF precision
(the llama.cpp engine) the bare arm is a llama-cpp-python loop on the same cached GGUF file
(`Llama.generate`, greedy, cut at the same number of tokens), at batch 1.

    python benchmarks/harness_overhead.py                       # SmolLM2-135M, batch 4, 32 tokens
    python benchmarks/harness_overhead.py --model tiny-llama --rounds 2
    python benchmarks/harness_overhead.py --precision gguf-q4_k_m --batch 1 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from transformers import AutoModelForCausalLM

from quantbench.cache import cache_root
from quantbench.config import registry
from quantbench.config.schema import register_configs
from quantbench.job.run import run_job
from quantbench.models.source import resolve_model
from quantbench.runtime.threads import job_threads


def bare_tokens_per_s(
    model, inputs: dict, max_new_tokens: int, iterations: int, warmup: int, pad_token_id: int
) -> float:
    """The loop a person writes by hand: greedy, fixed length, wall clock around generate()."""
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=pad_token_id,
    )
    with torch.inference_mode():
        for _ in range(warmup):
            model.generate(**inputs, **kwargs)
        total_s, tokens = 0.0, 0
        for _ in range(iterations):
            started = time.perf_counter()
            output = model.generate(**inputs, **kwargs)
            total_s += time.perf_counter() - started
            tokens += output[:, inputs["input_ids"].shape[1] :].numel()
    return tokens / total_s


def bare_llama_cpp_tokens_per_s(
    path: Path, prompt: list[int], max_new_tokens: int, iterations: int, warmup: int, threads: int
) -> float:
    """The llama-cpp-python loop a person writes: Llama.generate greedy, stopped after max_new_tokens."""
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(path),
        n_ctx=len(prompt) + max_new_tokens,
        n_batch=len(prompt) + max_new_tokens,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )

    def one() -> int:
        tokens = 0
        llm.reset()  # else generate() reuses the cached prompt and skips the prefill the job times
        for _ in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            tokens += 1
            if tokens == max_new_tokens:
                break
        return tokens

    for _ in range(warmup):
        one()
    total_s, tokens = 0.0, 0
    for _ in range(iterations):
        started = time.perf_counter()
        tokens += one()
        total_s += time.perf_counter() - started
    return tokens / total_s


def llama_cpp_arm(cfg, family, spec) -> tuple[Path, list[int]]:
    """The GGUF file the job will open (made and cached by the gguf backend) and the job's prompt tokens."""
    from quantbench.backends.base import LoadRequest
    from quantbench.runtime.device import resolve_device

    loaded = (
        registry.backends()
        .get("gguf")
        .load(
            LoadRequest(
                model=spec,
                family=family,
                precision=cfg.precision,
                device=resolve_device("cpu"),
                cache_dir=cache_root(cfg.cache_dir),
            )
        )
    )
    samples = registry.datasets().get(cfg.dataset.loader).load(cfg.dataset)[:1]
    text = family.prompt_texts(samples, loaded.processor, bool(cfg.dataset.chat_template))[0]
    use_template = bool(cfg.dataset.chat_template) and bool(getattr(loaded.processor, "chat_template", None))
    prompt = loaded.processor(
        text, truncation=True, max_length=int(cfg.bench.max_input_tokens), add_special_tokens=not use_template
    )["input_ids"]
    return loaded.model.path, list(prompt)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="hardware.threads for both arms (default: the job's)")
    args = parser.parse_args()

    register_configs()
    overrides = [
        f"model={args.model}",
        f"precision={args.precision}",
        f"batch={args.batch}",
        "hardware=cpu",
        f"bench.max_new_tokens={args.max_new_tokens}",
        f"bench.min_iterations={args.iterations}",
        f"bench.max_iterations={args.iterations}",
        "bench.min_seconds=0",
        f"bench.warmup_iterations={args.warmup}",
        *([f"hardware.threads={args.threads}"] if args.threads else []),
    ]
    # run_job measures in this process (isolation belongs to the launcher), just like the bare loop.
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)

    family = registry.families().get(cfg.model.family)
    spec = resolve_model(cfg.model, family, cache_root(cfg.cache_dir))
    threads = job_threads(cfg.hardware)  # what the job sets: both arms run at it
    if cfg.precision.get("engine") == "llama.cpp":
        if args.batch != 1:
            print(
                "the bare llama-cpp-python arm decodes one sequence: use --batch 1 with a GGUF precision",
                file=sys.stderr,
            )
            return 2
        path, prompt = llama_cpp_arm(cfg, family, spec)
        return compare(
            cfg,
            args,
            lambda: bare_llama_cpp_tokens_per_s(
                path, prompt, args.max_new_tokens, args.iterations, args.warmup, threads
            ),
            threads,
        )
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(spec.load_path, dtype=torch.float32).eval()
    tokenizer = family.load_processor(spec.load_path)
    samples = registry.datasets().get(cfg.dataset.loader).load(cfg.dataset)[: args.batch]
    inputs = family.prepare_batch(
        samples,
        tokenizer,
        device="cpu",
        max_input_tokens=int(cfg.bench.max_input_tokens),
        chat_template=bool(cfg.dataset.chat_template),
    ).inputs

    return compare(
        cfg,
        args,
        lambda: bare_tokens_per_s(
            model, inputs, args.max_new_tokens, args.iterations, args.warmup, tokenizer.pad_token_id
        ),
        threads,
    )


def compare(cfg, args, bare_arm, threads: int) -> int:
    """Rounds of (bare arm, quantbench job), interleaved; prints each round's ratio and their median."""
    ratios = []
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            bare = bare_arm()
            result = run_job(cfg, Path(scratch) / f"round-{round_index}")
            if result.status != "ok":
                print(f"quantbench job {result.status}: {result.reason}", file=sys.stderr)
                return 1
            harness = result.metrics["tokens_per_s"]
            ratios.append(harness / bare)
            print(
                f"round {round_index}: bare {bare:.2f} tok/s, quantbench {harness:.2f} tok/s, "
                f"ratio {harness / bare:.3f}"
            )
    print(
        f"model={args.model} precision={args.precision} batch={args.batch} new_tokens={args.max_new_tokens} "
        f"iterations={args.iterations} rounds={args.rounds} threads={threads}"
    )
    print(
        f"ratio (quantbench / bare tokens/s): median {statistics.median(ratios):.3f}, "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}  (target >= 0.98)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
