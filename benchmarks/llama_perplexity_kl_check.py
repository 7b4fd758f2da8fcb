"""Does quantbench's KL divergence agree with `llama-perplexity --kl-divergence` on the same tokens?

llama-perplexity (llama.cpp's own tool, from the tools `quantbench engines install llama.cpp`
builds) first saves the base model's log-probabilities (`--kl-divergence-base`, on the f32 GGUF: the
converter's unquantized output), then scores the quantized file against them (`--kl-divergence`).
It cuts the text into chunks of `-c` tokens and scores only the second half of each chunk: the tokens
at positions c/2 + 1 ... c - 1, each predicted from the chunk's tokens before it.

quantbench's KL divergence (docs/quality.md) is scored on the same chunks here: `quality.context_tokens
= quality.stride = c`, so its windows are llama-perplexity's chunks, and `quality.max_tokens` the
chunks' tokens; it scores every token of a window after the first. So the script reports:

1. quantbench's own job (run_job, `quality=[ppl,kld]`) on those windows: `kld_mean` as a row has it
   (reference fp32 on transformers, its top 32 tokens plus the rest, every token after the first).
2. The same definition per token, recomputed here with quantbench's functions on the very token ids
   llama-perplexity read (from its base file), then restricted to llama-perplexity's tokens (the
   second half of each window): the number to compare, target within 2 %.
3. What the remaining definitions change: the reference (fp32 transformers vs llama.cpp's f32 GGUF,
   llama-perplexity's base) and the top-k coarsening (quality.kld.top_k: 32, 256, 1024, 4096, vs the
   full vocabulary, which is llama-perplexity's definition). The check passes when quantbench's
   kl_divergence over the full vocabulary is within 2 % of llama-perplexity's Mean KLD.

    python benchmarks/llama_perplexity_kl_check.py                    # SmolLM2-135M gguf-q4_k_m, 16 chunks of 512
    python benchmarks/llama_perplexity_kl_check.py --chunks 32 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module

from quantbench.backends.base import LoadRequest
from quantbench.cache import cache_root
from quantbench.config import registry
from quantbench.config.schema import register_configs
from quantbench.engines.llama_cpp import open_llama
from quantbench.gguf.files import context_length
from quantbench.gguf.store import gguf_file
from quantbench.gguf.tools import tool_path
from quantbench.job.run import run_job
from quantbench.models.source import resolve_model
from quantbench.quality.fidelity import kl_divergence, top_k_reference
from quantbench.quality.llama_cpp_logits import LlamaCppScorer
from quantbench.quality.reference import compose_precision, load_reference_model
from quantbench.quality.scoring import TokenScorer
from quantbench.quality.sources import read_samples
from quantbench.quality.text import evaluation_windows
from quantbench.runtime.device import resolve_device
from quantbench.runtime.threads import job_threads

TARGET_RELATIVE = 0.02
QUANTBENCH_TOP_K = 32  # quality.kld.top_k's default: what a row's kld_mean is computed with
TOP_KS = (QUANTBENCH_TOP_K, 256, 1024, 4096)  # how the coarsening's gap closes as k grows
FP32 = "fp32 transformers"
SUMMARY_LABELS = ("Mean    KLD", "Same top p", "Mean PPL(Q)", "Mean PPL(base)")  # as llama-perplexity prints them


def run_tool(command: list[str], log_file: Path) -> str:
    with open(log_file, "w") as sink:
        done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT)
    output = log_file.read_text(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}); log: {log_file}")
    return output


def parse_number(output: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s*:\s*([-0-9.eE+]+)", output)
    if match is None:
        raise SystemExit(f"llama-perplexity's output has no '{label}'")
    return float(match.group(1))


def base_file_tokens(path: Path) -> tuple[int, int, list[list[int]]]:
    """n_ctx, n_vocab and the chunks' token ids that llama-perplexity stored in its base file."""
    with open(path, "rb") as handle:
        if handle.read(8) != b"_logits_":
            raise SystemExit(f"{path} is not a llama-perplexity log-probabilities file")
        (n_ctx,) = struct.unpack("<I", handle.read(4))
        n_vocab, n_chunk = struct.unpack("<ii", handle.read(8))
        tokens = np.frombuffer(handle.read(4 * n_ctx * n_chunk), dtype="<i4").tolist()
    return n_ctx, n_vocab, [tokens[i * n_ctx : (i + 1) * n_ctx] for i in range(n_chunk)]


def llama_perplexity_kld(
    program: Path, base: Path, quantized: Path, text: str, chunks: int, context: int, threads: int
) -> tuple[dict[str, float], list[list[int]]]:
    """llama-perplexity's two passes: the base file's log-probabilities saved, then the quantized file
    scored against them. Its summary figures and the chunks' token ids it read."""
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        (scratch / "text.txt").write_text(text, encoding="utf-8")
        common = ["-c", str(context), "-b", str(context), "-t", str(threads)]
        saved = ["--kl-divergence-base", str(scratch / "base.kld")]
        started = time.perf_counter()
        command = [str(program), "-m", str(base), "-f", str(scratch / "text.txt"), "--chunks", str(chunks)]
        run_tool([*command, *common, *saved], scratch / "base.log")
        output = run_tool([str(program), "-m", str(quantized), *common, *saved, "--kl-divergence"], scratch / "kld.log")
        seconds = time.perf_counter() - started
        n_ctx, _, chunk_ids = base_file_tokens(scratch / "base.kld")
    figures = {
        label: parse_number(output, label) for label in ("Mean    KLD", "Same top p", "Mean PPL(Q)", "Mean PPL(base)")
    }
    print(
        f"llama-perplexity: {len(chunk_ids)} chunks of {n_ctx}, {seconds:.0f} s; "
        f"Mean KLD {figures['Mean    KLD']:.6f}, "
        f"same top {figures['Same top p']:.2f} %, PPL(Q) {figures['Mean PPL(Q)']:.4f}, "
        f"PPL(base) {figures['Mean PPL(base)']:.4f}"
    )
    return figures, chunk_ids


def per_token_klds(
    chunk_ids: list[list[int]], fp32: TokenScorer, llama_f32: LlamaCppScorer, llama_q: LlamaCppScorer
) -> dict[str, list[np.ndarray]]:
    """quantbench's kl_divergence per token of each chunk (rows: the chunk's positions after the first),
    against each reference and top-k coarsening, on llama-perplexity's own token ids."""
    add_bos = llama_q.llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
    per_token: dict[str, list[np.ndarray]] = {}
    for ids in chunk_ids:
        if add_bos:  # llama-perplexity puts BOS in place of each chunk's first token
            ids = [llama_q.llm.token_bos(), *ids[1:]]
        targets = torch.as_tensor(ids[1:])
        q = llama_q.log_probs(ids)[:-1]
        for reference_name, scorer in ((FP32, fp32), ("f32 GGUF llama.cpp", llama_f32)):
            p = scorer.log_probs(ids)[:-1]
            kept = TOP_KS if reference_name == FP32 else (QUANTBENCH_TOP_K,)
            for k in (*kept, p.shape[-1]):
                k_name = "full vocabulary" if k == p.shape[-1] else f"top {k}"
                kld = kl_divergence(top_k_reference(p, k, targets), q).numpy()
                per_token.setdefault(f"{reference_name}, {k_name}", []).append(kld)
    return per_token


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="gguf-q4_k_m")
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--context", type=int, default=512, help="tokens per chunk (llama-perplexity -c)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    context, chunks = args.context, args.chunks

    register_configs()
    overrides = [
        f"model={args.model}",
        f"precision={args.precision}",
        "hardware=cpu",
        "bench=quick",
        "quality=[ppl,kld]",
        f"quality.context_tokens={context}",
        f"quality.stride={context}",
        f"quality.max_tokens={chunks * context}",
        *([f"hardware.threads={args.threads}"] if args.threads else []),
    ]
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        cache = cache_root(cfg.cache_dir)
        device = resolve_device("cpu")
        threads = job_threads(cfg.hardware)
        torch.set_num_threads(threads)
        family = registry.families().get(cfg.model.family)
        spec = resolve_model(cfg.model, family, cache)
        loaded = (
            registry.backends()
            .get("gguf")
            .load(LoadRequest(model=spec, family=family, precision=cfg.precision, device=device, cache_dir=cache))
        )
        quantized = loaded.model.path
        base = gguf_file(spec, "f32", cache, threads)[0]
        tokenizer = loaded.processor
        print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
        print(f"quantized: {quantized}\nbase: {base}\nthreads {threads}, {chunks} chunks of {context} tokens")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        text = "".join(sample.text for sample in read_samples(cfg.quality.text, limit=None))
        program = tool_path(cache, "llama-perplexity")
        figures, chunk_ids = llama_perplexity_kld(program, base, quantized, text, chunks, context, threads)
        llama_kld = figures["Mean    KLD"]
        n_ctx = len(chunk_ids[0])

        # The text's tokens as quantbench's windows have them, against llama-perplexity's.
        windows = evaluation_windows(cfg.quality, tokenizer)
        ours = windows.token_ids[: len(chunk_ids) * n_ctx]
        theirs = [token for chunk in chunk_ids for token in chunk]
        differing = sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
        print(f"token ids: quantbench's windows vs llama-perplexity's chunks: {differing} of {len(theirs)} differ")

        # 1. quantbench's job as it runs.
        with tempfile.TemporaryDirectory() as scratch_dir:
            result = run_job(cfg, Path(scratch_dir) / "job")
        if result.status != "ok":
            print(f"quantbench job {result.status}: {result.reason}", file=sys.stderr)
            return 1
        job_kld = float(result.metrics["kld_mean"])
        print(
            f"quantbench job: kld_mean {job_kld:.6f} over {result.metrics['kld_n_tokens']} tokens "
            f"(reference {result.metrics['kld_reference']}, top {result.metrics['kld_top_k']}), "
            f"ppl {result.metrics['ppl']:.4f}"
        )

        # 2-3. Per token on llama-perplexity's token ids, with quantbench's functions.
        reference_model = load_reference_model(compose_precision("fp32"), family, spec, device, cache)
        fp32 = TokenScorer(family, reference_model.model, reference_model.processor, "cpu")
        n_ctx_train = context_length(quantized)

        def llama_scorer(path: Path) -> LlamaCppScorer:
            llm = open_llama(path, n_ctx=n_ctx, threads=threads, logits_all=True, seed=0, gpu=False)
            return LlamaCppScorer(llm, family, tokenizer, n_ctx_train)

        per_token = per_token_klds(chunk_ids, fp32, llama_scorer(base), llama_scorer(quantized))

    first = n_ctx // 2  # llama-perplexity's rows: logits at first .. n_ctx - 2 predict tokens first + 1 ..
    print(f"\nllama-perplexity Mean KLD (second half of each chunk): {llama_kld:.6f}")
    print(f"quantbench job kld_mean (every token after the first):  {job_kld:.6f}")
    print("per token, quantbench's kl_divergence on llama-perplexity's token ids:")
    print(f"  {'reference, tokens kept':40s} {'every token':>12s} {'second half':>12s} {'vs llama-perplexity':>20s}")
    relative = {}
    for name, values in per_token.items():
        every = float(np.mean(np.concatenate(values)))
        second = float(np.mean(np.concatenate([v[first:] for v in values])))
        relative[name] = second / llama_kld - 1
        print(f"  {name:40s} {every:12.6f} {second:12.6f} {100 * relative[name]:+19.2f} %")
    print(
        f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({time.strftime('%Y-%m-%d %H:%M:%S %Z')})"
    )
    # The same definition as llama-perplexity's (the full distributions) is the check; quantbench's default
    # coarsening (top 32 + the rest) is the named difference.
    same = relative[f"{FP32}, full vocabulary"]
    print(
        f"quantbench, full vocabulary, on llama-perplexity's tokens, vs llama-perplexity: {100 * same:+.2f} % "
        f"(target within {100 * TARGET_RELATIVE:.0f} %); with quantbench's default top {QUANTBENCH_TOP_K} + rest: "
        f"{100 * relative[f'{FP32}, top {QUANTBENCH_TOP_K}']:+.2f} % (a lower bound of the full KL divergence)"
    )
    return 0 if abs(same) <= TARGET_RELATIVE else 1


if __name__ == "__main__":
    sys.exit(main())
