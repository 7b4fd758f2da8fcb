"""Perplexity and fidelity on the evaluation text: one forward pass per window serves both.

When KL divergence is asked for and the reference is not cached yet, it is computed first: by
this job itself when it runs at the reference precision (in the same pass, so its own KL
divergence is exactly 0), otherwise by loading the model at the reference precision, scoring the
windows, caching the result and freeing that model before this job's pass. With the reference
come the paired statistics against it (paired.py: perplexity ratio, delta p). Observers (an engine's
own comparisons on the same pass, e.g. quality/cache_precision.py's KV cache against an f16 one) get
every window's log-probabilities too, and add their metrics.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

from omegaconf import DictConfig, OmegaConf

from quantbench.quality.fidelity import FidelityAccumulator, ReferenceDistribution, target_log_probs, top_k_reference
from quantbench.quality.paired import PairedAccumulator
from quantbench.quality.perplexity import PerplexityAccumulator
from quantbench.quality.reference import (
    compose_precision,
    load_reference,
    load_reference_model,
    reference_entry,
    reference_precision_name,
    save_reference,
)
from quantbench.quality.scoring import TokenScorer, text_tokenizer
from quantbench.quality.sources import read_samples
from quantbench.quality.windows import TextWindows, text_windows

if TYPE_CHECKING:
    from quantbench.models.source import ModelSpec
    from quantbench.runtime.device import Device

log = logging.getLogger("quantbench")

Tick = Callable[[str, int, int], None]


class WindowObserver(Protocol):
    """Sees the job's log-probabilities of every window, in order, and adds metrics of its own."""

    def start(self, windows: TextWindows) -> None: ...

    def add(self, log_probs: Any, targets: Any) -> None: ...

    def metrics(self, *, confidence: float, windows: TextWindows) -> dict[str, Any]: ...


def evaluation_windows(quality: DictConfig, tokenizer: Any) -> TextWindows:
    text = "".join(sample.text for sample in read_samples(quality.text, limit=None))
    return text_windows(
        text,
        tokenizer,
        context_tokens=int(quality.context_tokens),
        stride=int(quality.stride),
        max_tokens=None if quality.max_tokens is None else int(quality.max_tokens),
        limit=None if quality.limit is None else int(quality.limit),
    )


def scored_log_probs(
    scorer: TokenScorer, windows: TextWindows, tick: Tick | None = None, phase: str = "quality"
) -> Iterator[tuple[Any, Any]]:
    """(log_probs [scored, vocab], targets [scored]) per window, in order."""
    import torch

    for done, window in enumerate(windows.windows):
        token_ids = windows.window_ids(window)
        # rows first_scored - 1 ... length - 2 predict the scored tokens; the last row predicts past the window
        log_probs = scorer.log_probs(token_ids, last=window.n_scored + 1)[:-1]
        targets = torch.as_tensor(token_ids[window.first_scored :], device=log_probs.device)
        yield log_probs, targets
        if tick:
            tick(phase, done + 1, len(windows.windows))


def concatenate(parts: list[ReferenceDistribution]) -> ReferenceDistribution:
    import torch

    return ReferenceDistribution(
        torch.cat([part.top_indices for part in parts]),
        torch.cat([part.top_log_probs for part in parts]),
        torch.cat([part.rest_log_prob for part in parts]),
        torch.cat([part.target_log_prob for part in parts]),
    )


def compute_reference(
    scorer: TokenScorer, windows: TextWindows, top_k: int, tick: Tick | None = None
) -> ReferenceDistribution:
    parts = [
        top_k_reference(log_probs, top_k, targets)
        for log_probs, targets in scored_log_probs(scorer, windows, tick, "reference")
    ]
    return concatenate(parts)


def evaluate_text_metrics(
    quality: DictConfig,
    scorer: TokenScorer,
    *,
    job_precision: DictConfig,
    spec: ModelSpec,
    device: Device,
    cache_dir: Path,
    tick: Tick | None = None,
    observers: Sequence[WindowObserver] = (),
) -> dict[str, Any]:
    windows = evaluation_windows(quality, text_tokenizer(scorer.processor))
    for observer in observers:
        observer.start(windows)
    reference: ReferenceDistribution | None = None
    build_top_k: int | None = None
    metrics: dict[str, Any] = {}
    if quality.kld is not None:
        top_k = int(quality.kld.top_k)
        name = reference_precision_name(str(quality.kld.reference), device)
        # The job's own precision node carries any command-line overrides of that option.
        precision = job_precision if job_precision.name == name else compose_precision(name)
        entry = reference_entry(cache_dir, spec, windows.digest(), precision, top_k, device)
        reference = load_reference(entry, "cpu", windows.n_scored)
        # A job at the reference precision stores its own scores as the reference, unless they are not
        # the precision's alone (a quantized KV cache's: quality/cache_scorer.py).
        if reference is None and _same_precision(precision, job_precision) and getattr(scorer, "own_reference", True):
            build_top_k = top_k
        elif reference is None:
            reference = _compute_and_cache(
                entry, precision, scorer.family, scorer.device, windows, top_k, spec, device, cache_dir, tick
            )
        metrics.update({"kld_reference": name, "kld_top_k": top_k})

    perplexity = PerplexityAccumulator() if quality.ppl is not None else None
    fidelity = FidelityAccumulator() if quality.kld is not None else None
    # The paired statistics come with the reference, whichever precision this is (llama.cpp's logits too).
    paired = PairedAccumulator() if quality.kld is not None else None
    built: list[ReferenceDistribution] = []
    offset = 0
    for log_probs, targets in scored_log_probs(scorer, windows, tick, "quality text"):
        if perplexity is not None:
            perplexity.add(log_probs, targets)
        if fidelity is not None:
            if build_top_k is not None:
                rows = top_k_reference(log_probs, build_top_k, targets)
                built.append(rows)
            else:
                rows = reference.rows(offset, offset + len(targets)).to(log_probs.device)
            fidelity.add(rows, log_probs)
            paired.add(rows.target_log_prob, target_log_probs(log_probs, targets))
        for observer in observers:
            observer.add(log_probs, targets)
        offset += len(targets)
    if built:
        save_reference(entry, concatenate(built), _reference_meta(spec, windows, precision, build_top_k, device))

    confidence = float(quality.confidence)
    if perplexity is not None:
        metrics.update(
            perplexity.metrics(confidence=confidence, context_tokens=windows.context_tokens, stride=windows.stride)
        )
    if fidelity is not None:
        metrics.update(fidelity.metrics(confidence=confidence))
        metrics.update(paired.metrics(confidence=confidence))
    for observer in observers:
        metrics.update(observer.metrics(confidence=confidence, windows=windows))
    return metrics


def _same_precision(a: DictConfig, b: DictConfig) -> bool:
    return OmegaConf.to_container(a, resolve=True) == OmegaConf.to_container(b, resolve=True)


def cached_reference(
    quality: DictConfig,
    windows: TextWindows,
    family: Any,
    spec: ModelSpec,
    device: Device,
    cache_dir: Path,
    tick: Tick | None = None,
) -> tuple[ReferenceDistribution, str, int]:
    """(the reference distributions of `windows`, the reference precision's name, its top k): the
    cache entry evaluate_text_metrics uses, computed at the reference precision on a miss. For a
    job that does not run the model itself at that precision (a served one)."""
    from quantbench.config.schema import FidelityQualityConfig

    kld = quality.get("kld") or FidelityQualityConfig()
    top_k = int(kld.top_k)
    name = reference_precision_name(str(kld.reference), device)
    precision = compose_precision(name)
    entry = reference_entry(cache_dir, spec, windows.digest(), precision, top_k, device)
    reference = load_reference(entry, "cpu", windows.n_scored)
    if reference is None:
        reference = _compute_and_cache(
            entry, precision, family, device.torch_device, windows, top_k, spec, device, cache_dir, tick
        )
    return reference, name, top_k


def _compute_and_cache(
    entry: Path,
    precision: DictConfig,
    family: Any,
    torch_device: str,
    windows: TextWindows,
    top_k: int,
    spec: ModelSpec,
    device: Device,
    cache_dir: Path,
    tick: Tick | None,
) -> ReferenceDistribution:
    """The reference computed by loading the model at the reference precision, then cached."""
    from quantbench.measure.memory import release_memory

    log.info("computing the %s reference distributions of %s (once; cached in %s)", precision.name, spec.name, entry)
    loaded = load_reference_model(precision, family, spec, device, cache_dir)
    reference = compute_reference(
        TokenScorer(family, loaded.model, loaded.processor, torch_device), windows, top_k, tick
    )
    # Free the reference model before this job's own pass: the two are in memory together only briefly.
    del loaded
    release_memory()
    save_reference(entry, reference, _reference_meta(spec, windows, precision, top_k, device))
    return reference


def _reference_meta(
    spec: ModelSpec, windows: TextWindows, precision: DictConfig, top_k: int, device: Device
) -> dict[str, Any]:
    return {
        "model": spec.name,
        "fingerprint": spec.fingerprint,
        "precision": OmegaConf.to_container(precision, resolve=True),
        "top_k": top_k,
        "device": device.type,
        **windows_meta(windows),
    }


def windows_meta(windows: TextWindows) -> dict[str, Any]:
    """What a cached reference records of the windows it was computed on, and when."""
    return {
        "context_tokens": windows.context_tokens,
        "stride": windows.stride,
        "n_windows": len(windows.windows),
        "n_tokens": windows.n_scored,
        "windows_digest": windows.digest(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
