"""How close is the served KL divergence (a server's top k) to the offline full-vocabulary one?

The served fidelity (serve.fidelity, docs/serving.md) sees only the top k log-probabilities a server
returns per token, and computes KL(P_ref || Q) over the reference's top K intersected with them plus
one bucket for the rest (quantbench/quality/served.py): a lower bound. This script computes, from the
same logits, on the same windows the serving job scores (the first `--windows` windows of the offline
KL scorer's text, `--tokens` last scored tokens of each, and all their scored tokens):

- the full-vocabulary KL(P || Q) (llama-perplexity's definition),
- the offline scorer's `kl_divergence` (the reference's top K plus the rest, Q known in full),
- the served estimate with Q cut to its top k, for several k and K,
- top-1 agreement (the same in every one of them),

with P = the reference precision (fp32 on transformers) and Q = the precision's own logits offline
(a GGUF type through llama-cpp-python, the offline llama.cpp engine's scorer). Given the result.json
of serving jobs (`--served`), it sets their served top-1 and KL at no load and under load beside the
offline values on the same tokens.

    python benchmarks/served_fidelity_check.py                          # SmolLM2-135M gguf-q4_k_m, 4 x 512
    python benchmarks/served_fidelity_check.py --served multirun/.../result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from quantbench.models.source import resolve_model
from quantbench.quality.fidelity import kl_divergence, top_k_reference
from quantbench.quality.llama_cpp_logits import LlamaCppScorer
from quantbench.quality.reference import compose_precision, load_reference_model
from quantbench.quality.scoring import TokenScorer
from quantbench.quality.served import ServedTopK, served_kl_divergence
from quantbench.quality.text import evaluation_windows, scored_log_probs
from quantbench.runtime.device import resolve_device
from quantbench.runtime.threads import job_threads

REFERENCE_TOP_KS = (32, 256)  # quality.kld.top_k: 32 is the default (the offline rows' kld_mean)
SERVED_TOP_KS = (20, 32, 64, 256)  # serve.fidelity.top_k: 20 is vLLM's default cap, 64 quantbench's default


def served_of(q: torch.Tensor, k: int) -> ServedTopK:
    values, indices = q.topk(k, dim=-1)
    return ServedTopK(indices.numpy().astype(np.int64), values.double().numpy())


def estimates(p: torch.Tensor, q: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
    """Per token: each definition of KL(P || Q), and top-1 agreement."""
    out = {
        "full vocabulary": (p.double().exp() * (p.double() - q.double())).sum(-1).numpy(),
        "top-1 agreement": (p.argmax(-1) == q.argmax(-1)).numpy().astype(float),
        "Q top-1 token": q.argmax(-1).numpy(),
    }
    for big_k in REFERENCE_TOP_KS:
        reference = top_k_reference(p, big_k, targets)
        out[f"offline: reference top {big_k} + rest, Q whole"] = kl_divergence(reference, q).numpy()
        for k in SERVED_TOP_KS:
            out[f"served: reference top {big_k}, Q top {k}"] = served_kl_divergence(reference, served_of(q, k))
    return out


def offline_on_same_tokens(
    job_dir: Path, phase: str, every: dict[str, list[np.ndarray]], first_scored: list[int], metrics: dict
) -> None:
    """The offline values on exactly the tokens the server scored in `phase` (served_fidelity.parquet),
    and how far the server's per-token KL is from offline llama.cpp's with the same top k."""
    import polars as pl

    tokens = pl.read_parquet(job_dir / "served_fidelity.parquet").filter(pl.col("phase") == phase)
    rows = [(w, p - first_scored[w]) for w, p in zip(tokens["window"].to_list(), tokens["position"].to_list())]
    big_k, k = metrics.get("served_fidelity_reference_top_k"), metrics.get("served_fidelity_top_k")
    same = f"served: reference top {big_k}, Q top {k}"
    for name in ("full vocabulary", f"offline: reference top {big_k} + rest, Q whole", same, "top-1 agreement"):
        if name not in every:
            continue
        values = np.array([every[name][w][r] for w, r in rows])
        scale = 100 if name == "top-1 agreement" else 1
        print(f"    offline on the same {len(rows)} tokens, {name}: {scale * values.mean():.6f}")
    if same in every:
        offline = np.array([every[same][w][r] for w, r in rows])
        served = tokens["kld"].to_numpy()
        same_top1 = np.mean(np.array(tokens["served_top1"].to_list()) == np.array(offline_top1(every, rows)))
        print(
            f"    per token, served - offline llama.cpp (same top k): mean {np.mean(served - offline):+.6f}, "
            f"max |.| {np.abs(served - offline).max():.6f}; same top-1 token as offline llama.cpp: "
            f"{100 * same_top1:.2f} %"
        )


def offline_top1(every: dict[str, list[np.ndarray]], rows: list[tuple[int, int]]) -> list[int]:
    return [int(every["Q top-1 token"][w][r]) for w, r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="gguf-q4_k_m")
    parser.add_argument("--windows", type=int, default=4, help="serve.fidelity.windows")
    parser.add_argument("--tokens", type=int, default=32, help="serve.fidelity.tokens")
    parser.add_argument("--context", type=int, default=512, help="quality.context_tokens")
    parser.add_argument("--served", type=Path, nargs="*", default=[], help="result.json of serving jobs")
    args = parser.parse_args()

    register_configs()
    overrides = [
        f"model={args.model}",
        f"precision={args.precision}",
        "hardware=cpu",
        f"quality.context_tokens={args.context}",
        f"quality.stride={args.context}",
        f"quality.limit={args.windows}",
    ]
    with initialize_config_module(config_module="quantbench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    cache = cache_root(cfg.cache_dir)
    device = resolve_device("cpu")
    threads = job_threads(cfg.hardware)
    torch.set_num_threads(threads)
    family = registry.families().get(cfg.model.family)
    spec = resolve_model(cfg.model, family, cache)
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    reference_model = load_reference_model(compose_precision("fp32"), family, spec, device, cache)
    fp32 = TokenScorer(family, reference_model.model, reference_model.processor, "cpu")
    windows = evaluation_windows(cfg.quality, reference_model.processor)
    loaded = (
        registry.backends()
        .get("gguf")
        .load(LoadRequest(model=spec, family=family, precision=cfg.precision, device=device, cache_dir=cache))
    )
    path = loaded.model.path
    llm = open_llama(path, n_ctx=args.context, threads=threads, logits_all=True, seed=0, gpu=False)
    gguf = LlamaCppScorer(llm, family, loaded.processor, context_length(path) or args.context)
    print(f"{args.precision}: {path}; {len(windows.windows)} windows of {args.context}, the last {args.tokens} each")

    every: dict[str, list[np.ndarray]] = {}
    last: dict[str, list[np.ndarray]] = {}
    for (p, targets), (q, _) in zip(scored_log_probs(fp32, windows), scored_log_probs(gguf, windows)):
        for name, values in estimates(p, q, targets).items():
            every.setdefault(name, []).append(values)
            last.setdefault(name, []).append(values[-args.tokens :])
    first_scored = [window.first_scored for window in windows.windows]
    every_mean = {name: float(np.concatenate(parts).mean()) for name, parts in every.items()}
    last_mean = {name: float(np.concatenate(parts).mean()) for name, parts in last.items()}
    n_every = sum(len(part) for part in every["full vocabulary"])
    n_last = sum(len(part) for part in last["full vocabulary"])

    print(
        f"\n| definition (P = fp32 transformers, Q = {args.precision} llama.cpp offline) "
        f"| last {args.tokens} of each window ({n_last} tokens) | ÷ full | every scored token ({n_every}) | ÷ full |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in every:
        if name in ("top-1 agreement", "Q top-1 token"):
            continue
        print(
            f"| {name} | {last_mean[name]:.6f} | {last_mean[name] / last_mean['full vocabulary']:.3f} "
            f"| {every_mean[name]:.6f} | {every_mean[name] / every_mean['full vocabulary']:.3f} |"
        )
    agree = 100 * last_mean["top-1 agreement"], 100 * every_mean["top-1 agreement"]
    print(f"| top-1 agreement, % | {agree[0]:.2f} | | {agree[1]:.2f} | |")

    for result_file in args.served:
        data = json.loads(result_file.read_text())
        metrics = data["metrics"]
        print(
            f"\nserved: {result_file} ({metrics.get('engine')}, {metrics.get('served_fidelity_protocol')}, "
            f"top {metrics.get('served_fidelity_top_k')}, "
            f"reference top {metrics.get('served_fidelity_reference_top_k')})"
        )
        for phase in ("no_load", "under_load"):
            top1, kld = metrics.get(f"served_top1_agree_{phase}"), metrics.get(f"served_kld_mean_{phase}")
            tokens = metrics.get(f"served_fidelity_tokens_{phase}")
            if top1 is None:
                print(f"  {phase}: {metrics.get(f'served_fidelity_error_{phase}')}")
                continue
            low, high = metrics.get(f"served_kld_mean_{phase}_ci_low"), metrics.get(f"served_kld_mean_{phase}_ci_high")
            print(f"  {phase}: top-1 {top1:.2f} % ({tokens} tokens), KL {kld:.6f} [{low}, {high}]")
            offline_on_same_tokens(result_file.parent, phase, every, first_scored, metrics)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
