"""PubMedQA log-likelihood scoring: the per-question path against the batched one, on one engine.

The per-question path (quantbench/quality/pubmedqa.py `choice_log_likelihoods`) runs one pass over
each prompt, plus one per multi-token answer, through a TokenScorer (llama.cpp: a context with
logits for every position). The batched path (the scorer's `choice_scoring`) has logits only where
an answer's log-probability is read: quality.pubmedqa.batch_size questions per transformers forward
pass; on llama.cpp one question per llama_decode (quantbench/gguf/scoring.py says why). This
script times one of them on the test split and writes every question's three log-likelihoods, so
two runs (or a run and an earlier predictions file) compare answer by answer.

    # llama.cpp, SmolLM2-135M gguf-q4_k_m, one thread: each path, then the comparison
    python benchmarks/pubmedqa_scoring.py --engine llama.cpp --path per-question --out /tmp/old.parquet
    python benchmarks/pubmedqa_scoring.py --engine llama.cpp --path batched --out /tmp/new.parquet \\
        --compare /tmp/old.parquet
    # transformers fp32
    python benchmarks/pubmedqa_scoring.py --engine transformers --precision fp32 --path batched --limit 100

--compare takes this script's output or docs/results/gguf_smollm2_pubmedqa500_predictions.parquet
(its rows of --precision). Exit 1 when an answer differs or a log-likelihood moves by more than 1e-3.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import polars as pl
import torch
from hydra import compose, initialize_config_module

from quantbench.backends.base import LoadRequest
from quantbench.cache import cache_root
from quantbench.config import registry
from quantbench.config.schema import register_configs
from quantbench.data.pubmedqa import CHOICES
from quantbench.models.source import resolve_model
from quantbench.quality.pubmedqa import answer_by_loglikelihood, predictions_frame
from quantbench.quality.sources import read_samples
from quantbench.runtime.device import resolve_device
from quantbench.runtime.threads import job_threads

TOLERANCE_NATS = 1e-3
LOGLIK_COLUMNS = [f"loglik_{choice}" for choice in CHOICES]


def load_avg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def llama_cpp_scorer(cfg, family, spec, device, cache, threads, batched: bool):
    """The job's scorer on the GGUF file, as quantbench/engines/llama_cpp.py opens it for quality."""
    from quantbench.engines.llama_cpp import open_llama
    from quantbench.gguf.files import context_length
    from quantbench.quality.llama_cpp_logits import LlamaCppScorer, scoring_context_tokens

    loaded = (
        registry.backends()
        .get("gguf")
        .load(LoadRequest(model=spec, family=family, precision=cfg.precision, device=device, cache_dir=cache))
    )
    path = loaded.model.path
    n_ctx_train = context_length(path)
    n_ctx = scoring_context_tokens(cfg.quality, n_ctx_train)
    llm = open_llama(path, n_ctx=n_ctx, threads=threads, logits_all=not batched, seed=0, gpu=False)
    print(f"GGUF file: {path} ({path.stat().st_size} bytes), context {n_ctx}")
    return LlamaCppScorer(llm, family, loaded.processor, n_ctx_train)


def transformers_scorer(cfg, family, spec, device, cache):
    from quantbench.quality.scoring import TokenScorer

    backend = registry.backends().get(cfg.precision.backend)
    request = LoadRequest(model=spec, family=family, precision=cfg.precision, device=device, cache_dir=cache)
    loaded = backend.load(request)
    return TokenScorer(family, loaded.model, loaded.processor, "cpu")


def compare(frame: pl.DataFrame, reference_path: Path, precision: str) -> bool:
    reference = pl.read_parquet(reference_path)
    if "precision" in reference.columns:
        reference = reference.filter(pl.col("precision") == precision)
    joined = frame.join(reference, on="question_id", suffix="_ref")
    if joined.height != frame.height:
        print(f"compare: {frame.height - joined.height} questions are not in {reference_path}")
    differences = [(joined[column] - joined[f"{column}_ref"]).abs().max() for column in LOGLIK_COLUMNS if joined.height]
    worst = max(differences) if differences else float("nan")
    changed = joined.filter(pl.col("prediction") != pl.col("prediction_ref")).height
    print(
        f"compare with {reference_path} ({joined.height} questions): max |Δ log-likelihood| {worst:.3g} nats, "
        f"{changed} predictions differ"
    )
    return joined.height == frame.height and changed == 0 and worst <= TOLERANCE_NATS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("llama.cpp", "transformers"), default="llama.cpp")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default=None, help="default: gguf-q4_k_m (llama.cpp), fp32 (transformers)")
    parser.add_argument("--path", choices=("per-question", "batched"), default="batched")
    parser.add_argument("--batch-size", type=int, default=None, help="quality.pubmedqa.batch_size (batched path)")
    parser.add_argument("--threads", type=int, default=1, help="hardware.threads")
    parser.add_argument("--limit", type=int, default=None, help="the first N test questions (default: all 500)")
    parser.add_argument("--out", type=Path, default=None, help="parquet of the per-question log-likelihoods")
    parser.add_argument("--compare", type=Path, default=None, help="a predictions parquet to compare with")
    args = parser.parse_args()
    precision = args.precision or ("gguf-q4_k_m" if args.engine == "llama.cpp" else "fp32")

    register_configs()
    overrides = [
        f"model={args.model}",
        f"precision={precision}",
        "hardware=cpu",
        "bench=quick",
        "quality=[pubmedqa]",
        f"hardware.threads={args.threads}",
        *([f"quality.pubmedqa.batch_size={args.batch_size}"] if args.batch_size else []),
    ]
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    cache = cache_root(cfg.cache_dir)
    device = resolve_device("cpu")
    threads = job_threads(cfg.hardware)
    torch.set_num_threads(threads)
    family = registry.families().get(cfg.model.family)
    spec = resolve_model(cfg.model, family, cache)
    batched = args.path == "batched"
    if args.engine == "llama.cpp":
        scorer = llama_cpp_scorer(cfg, family, spec, device, cache, threads, batched)
    else:
        scorer = transformers_scorer(cfg, family, spec, device, cache)
    settings = cfg.quality.pubmedqa
    samples = read_samples(settings, limit=args.limit)
    batch_size = int(settings.batch_size) if batched else None

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(
        f"{args.engine} {args.model} {precision}, {args.path} path"
        + (f" (batch_size {batch_size})" if batched else "")
        + f", {len(samples)} questions, threads {threads}"
    )
    print(f"load average before: {load_avg()}  ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})")
    started = time.perf_counter()
    answers = answer_by_loglikelihood(scorer, samples, int(settings.max_prompt_tokens), None, batch_size=batch_size)
    seconds = time.perf_counter() - started
    print(f"load average after: {load_avg()}  ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})")
    frame = predictions_frame(answers).select(["question_id", "prediction", *LOGLIK_COLUMNS, "n_prompt_tokens"])
    tokens = int(frame["n_prompt_tokens"].sum())
    print(
        f"scored {len(answers)} questions in {seconds:.1f} s ({seconds / len(answers):.3f} s per question, "
        f"{tokens / seconds:.0f} prompt tokens/s); accuracy {sum(a.correct for a in answers) / len(answers):.4f}"
    )
    if args.out:
        frame.write_parquet(args.out)
        print(f"log-likelihoods: {args.out}")
    if args.compare:
        return 0 if compare(frame, args.compare, precision) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
