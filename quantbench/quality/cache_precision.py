"""What the KV cache's precision alone does to quality: the job's scores against the same weights
with an f16 cache, on the same tokens (llama.cpp; llama-bench measures only these caches' speed).

A GGUF job with engine.kv_cache_dtype set to a type other than f16 (q8_0, q4_0, ...) and quality
ppl or kld scores its windows once, with its own cache; each window's log-probabilities go to the
usual metrics (against the fp32 reference: weights and cache together) and to a `CacheComparison`,
which holds them against the f16 cache's distributions of the same file on the same windows, both
with flash attention on, so the cache type is the only difference. That reference is computed once
per file, windows, k and binding version and cached beside the precision references
(`<cache_dir>/reference/<gguf entry>-kv-f16-<key>/`, the same stored form: quality/reference.py).

llama.cpp writes each decoded batch's keys and values into the cache and attends over the cache, so
even a window decoded in one call reads its own keys and values back at the cache's precision. The
columns (`kv_cache_` + the fidelity, perplexity and paired names): KL divergence and top-1 agreement
against the f16 cache (top-k plus the rest, as quality/fidelity.py), this cache's perplexity, the f16
cache's perplexity on the same tokens and their paired ratio. Against an f16 cache of its own the KL
divergence is exactly 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from quantbench.cache import stable_hash
from quantbench.quality.fidelity import FidelityAccumulator, ReferenceDistribution, target_log_probs
from quantbench.quality.paired import PairedAccumulator
from quantbench.quality.perplexity import PerplexityAccumulator
from quantbench.quality.windows import TextWindows

REFERENCE_CACHE_TYPE = "f16"
LLAMA_CPP_REFERENCE = f"{REFERENCE_CACHE_TYPE} cache of the same GGUF file (flash attention on)"
# Bump when the reference is computed differently, so old entries are not reused.
KV_REFERENCE_VERSION = 1
PREFIX = "kv_cache_"
# The columns kept from each accumulator's metrics (the rest: kld_mean's percentiles and the delta p
# distribution stay with the job's main comparison, the one against the fp32 reference).
FIDELITY_KEPT = (
    "kld_mean",
    "kld_mean_ci_low",
    "kld_mean_ci_high",
    "kld_median",
    "kld_p99",
    "kld_max",
    "top1_agree",
    "top1_agree_ci_low",
    "top1_agree_ci_high",
)
PERPLEXITY_KEPT = ("ppl", "ppl_ci_low", "ppl_ci_high", "ppl_context_tokens", "ppl_stride", "ppl_n_tokens")
PAIRED_KEPT = ("ppl_ratio", "ppl_ratio_low", "ppl_ratio_high", "delta_p_rms")


def text_metrics_selected(quality: Any) -> bool:
    return quality is not None and (quality.get("ppl") is not None or quality.get("kld") is not None)


def compares_cache(cache_type: str | None, quality: Any) -> bool:
    """Whether a llama.cpp job with this cache type and quality config gets the KV-cache comparison."""
    return cache_type is not None and cache_type != REFERENCE_CACHE_TYPE and text_metrics_selected(quality)


def reference_top_k(quality: Any) -> int:
    """k of the cache reference: quality.kld.top_k where kld runs, else its default."""
    from quantbench.config.schema import FidelityQualityConfig

    kld = quality.get("kld")
    return int(kld.top_k if kld is not None else FidelityQualityConfig.top_k)


def reference_entry(cache_dir: Path, gguf_file: Path, windows: TextWindows, top_k: int, binding_version: str) -> Path:
    """The f16 cache's reference for this file (its cache entry's name holds the weights' key, its
    type and the binding's version) on these windows."""
    entry = gguf_file.parent.name
    key = stable_hash(
        [
            KV_REFERENCE_VERSION,
            entry,
            gguf_file.stat().st_size,
            windows.digest(),
            top_k,
            REFERENCE_CACHE_TYPE,
            "flash_attn on",
            binding_version,
        ]
    )
    return cache_dir / "reference" / f"{entry}-kv-{REFERENCE_CACHE_TYPE}-{key}"


def reference_meta(gguf_file: Path, windows: TextWindows, top_k: int, binding_version: str) -> dict[str, Any]:
    from quantbench.quality.text import windows_meta

    return {
        "gguf_file": str(gguf_file),
        "cache_type": REFERENCE_CACHE_TYPE,
        "flash_attn": "on",
        "llama_cpp_python_version": binding_version,
        "top_k": top_k,
        **windows_meta(windows),
    }


class CacheComparison:
    """The job's log-probabilities, window by window in order, against the f16 cache's reference
    (a window observer of quality/text.py's pass)."""

    def __init__(self, reference: ReferenceDistribution, windows_digest: str, reference_label: str):
        self.reference = reference
        self.windows_digest = windows_digest
        self.reference_label = reference_label
        self.fidelity = FidelityAccumulator()
        self.perplexity = PerplexityAccumulator()
        self.paired = PairedAccumulator()
        self.offset = 0

    def start(self, windows: TextWindows) -> None:
        """The pass's windows must be the reference's (same text, tokenizer and settings)."""
        if windows.digest() != self.windows_digest or windows.n_scored != self.reference.n_tokens:
            raise ValueError(
                f"the quality pass scores other windows ({windows.digest()}, {windows.n_scored} tokens) than the "
                f"cache reference was computed on ({self.windows_digest}, {self.reference.n_tokens} tokens)"
            )

    def add(self, log_probs: Any, targets: Any) -> None:
        rows = self.reference.rows(self.offset, self.offset + len(targets)).to(log_probs.device)
        self.fidelity.add(rows, log_probs)
        self.perplexity.add(log_probs, targets)
        self.paired.add(rows.target_log_prob, target_log_probs(log_probs, targets))
        self.offset += len(targets)

    def metrics(self, *, confidence: float, windows: TextWindows) -> dict[str, Any]:
        fidelity = self.fidelity.metrics(confidence=confidence)
        perplexity = self.perplexity.metrics(
            confidence=confidence, context_tokens=windows.context_tokens, stride=windows.stride
        )
        paired = self.paired.metrics(confidence=confidence)
        kept = {
            **{name: fidelity[name] for name in FIDELITY_KEPT},
            **{name: perplexity[name] for name in PERPLEXITY_KEPT},
            **{name: paired[name] for name in PAIRED_KEPT},
        }
        reference_nll = -float(self.reference.target_log_prob.double().mean())
        return {
            f"{PREFIX}reference": self.reference_label,
            **{f"{PREFIX}{name}": value for name, value in kept.items()},
            f"{PREFIX}reference_ppl": math.exp(reference_nll),
        }
