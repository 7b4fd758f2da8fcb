"""Paired quality statistics against the reference precision (quantbench/quality/paired.py).

The perplexity ratio's interval equals a hand computation from the covariance of synthetic
per-window log-likelihoods (and is narrower than two independent intervals when they are
correlated); delta p and the ratio on a tiny model equal a direct computation from both models'
logits; the reference against itself is exactly 1 and 0.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from quantbench.backends.base import LoadRequest
from quantbench.config import registry
from quantbench.models.source import resolve_model
from quantbench.quality.intervals import clustered_mean_interval
from quantbench.quality.paired import paired_log_ratio
from quantbench.quality.scoring import TokenScorer, text_tokenizer
from quantbench.quality.text import evaluate_text_metrics, evaluation_windows
from quantbench.runtime.device import resolve_device

CPU = resolve_device("cpu")


def test_paired_log_ratio_interval_is_the_covariance_hand_computation():
    rng = np.random.default_rng(7)
    counts = np.array([100, 120, 80, 100, 90, 110, 100, 95])
    # Windows differ a lot in difficulty (shared by both precisions); the quantized model adds a little.
    difficulty = rng.normal(3.0, 0.6, size=counts.size)
    reference = difficulty * counts
    candidate = (difficulty + 0.05 + rng.normal(0, 0.02, size=counts.size)) * counts

    paired = paired_log_ratio(candidate, reference, counts, 0.95)

    # By hand: ratio-estimator residuals of each, then Var(d) = Var(q) + Var(r) - 2 Cov(q, r).
    windows, mean_count = counts.size, counts.mean()
    mean_q, mean_r = candidate.sum() / counts.sum(), reference.sum() / counts.sum()
    residual_q, residual_r = candidate - mean_q * counts, reference - mean_r * counts
    scale = windows * (windows - 1) * mean_count**2
    var_q, var_r = (residual_q**2).sum() / scale, (residual_r**2).sum() / scale
    covariance = (residual_q * residual_r).sum() / scale
    stderr = math.sqrt(var_q + var_r - 2 * covariance)
    half = stats.t.ppf(0.975, windows - 1) * stderr
    assert paired.mean == pytest.approx(mean_q - mean_r, rel=1e-12)
    assert paired.stderr == pytest.approx(stderr, rel=1e-9)
    assert (paired.low, paired.high) == pytest.approx((mean_q - mean_r - half, mean_q - mean_r + half), rel=1e-9)

    # Two independent intervals (what the per-precision perplexity intervals amount to) are far wider.
    unpaired = math.sqrt(
        clustered_mean_interval(candidate, counts, 0.95).stderr ** 2
        + clustered_mean_interval(reference, counts, 0.95).stderr ** 2
    )
    assert covariance > 0 and paired.stderr < unpaired / 5


def _load(compose_config, precision: str, overrides: list[str]):
    cfg = compose_config(["model=tiny-llama", f"precision={precision}", *overrides])
    family = registry.families().get("decoder")
    spec = resolve_model(cfg.model, family, Path(cfg.cache_dir))
    backend = registry.backends().get(cfg.precision.backend)
    loaded = backend.load(
        LoadRequest(model=spec, family=family, precision=cfg.precision, device=CPU, cache_dir=Path(cfg.cache_dir))
    )
    scorer = TokenScorer(family, loaded.model, loaded.processor, CPU.torch_device)
    return cfg, spec, loaded, scorer


def _metrics(cfg, spec, scorer, cache: Path):
    return evaluate_text_metrics(
        cfg.quality, scorer, job_precision=cfg.precision, spec=spec, device=CPU, cache_dir=cache
    )


def _target_log_probs(model, windows) -> list[torch.Tensor]:
    """Per window, log P(correct next token) of its scored tokens, straight from the model's logits."""
    found = []
    for window in windows.windows:
        ids = torch.tensor([windows.window_ids(window)])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
        rows = log_probs[window.first_scored - 1 : -1]
        found.append(rows.gather(1, ids[0, window.first_scored :].view(-1, 1)).squeeze(1).double())
    return found


def test_delta_p_and_ppl_ratio_on_a_tiny_model(compose_config, shared_data, tmp_path):
    cache = tmp_path / "cache"  # a reference of its own, built by the fp32 job in its own pass
    overrides = [
        "quality=[ppl,kld]",
        f"quality.data_dir={shared_data}",
        "quality.kld.top_k=8",
        "quality.kld.reference=fp32",
        "quality.context_tokens=64",
        "quality.stride=64",
        "quality.max_tokens=256",
    ]
    cfg, spec, fp32_loaded, fp32_scorer = _load(compose_config, "fp32", overrides)
    fp32 = _metrics(cfg, spec, fp32_scorer, cache)
    # Against itself: exactly 1 and 0, not approximately.
    assert fp32["ppl_ratio"] == fp32["ppl_ratio_low"] == fp32["ppl_ratio_high"] == 1.0
    assert fp32["delta_p_mean"] == fp32["delta_p_rms"] == fp32["delta_p_min"] == fp32["delta_p_max"] == 0.0
    assert fp32["delta_p_p1"] == fp32["delta_p_p99"] == 0.0

    cfg, spec, bf16_loaded, bf16_scorer = _load(compose_config, "bf16", overrides)
    bf16 = _metrics(cfg, spec, bf16_scorer, cache)
    windows = evaluation_windows(cfg.quality, text_tokenizer(bf16_loaded.processor))
    reference = _target_log_probs(fp32_loaded.model, windows)
    candidate = _target_log_probs(bf16_loaded.model, windows)
    delta_p = torch.cat([q.exp() - r.exp() for q, r in zip(candidate, reference)]).numpy()
    log_ratio = float(torch.cat([r - q for q, r in zip(candidate, reference)]).mean())
    assert bf16["paired_n_tokens"] == delta_p.size == bf16["ppl_n_tokens"]
    assert bf16["delta_p_mean"] == pytest.approx(delta_p.mean(), abs=1e-6)
    assert bf16["delta_p_rms"] == pytest.approx(math.sqrt((delta_p**2).mean()), rel=1e-4)
    assert bf16["delta_p_p50"] == pytest.approx(np.percentile(delta_p, 50), abs=1e-6)
    assert bf16["delta_p_rms"] > 0
    assert bf16["ppl_ratio"] == pytest.approx(math.exp(log_ratio), rel=1e-5)
    # The ratio is the ratio of the two perplexities the jobs report, on the same tokens.
    assert bf16["ppl_ratio"] == pytest.approx(bf16["ppl"] / fp32["ppl"], rel=1e-6)
    assert bf16["ppl_ratio_low"] < bf16["ppl_ratio"] < bf16["ppl_ratio_high"]
    assert bf16["delta_p_p1"] <= bf16["delta_p_p50"] <= bf16["delta_p_p99"]
    assert 0 <= bf16["top1_agree_ci_low"] < bf16["top1_agree"] < bf16["top1_agree_ci_high"] <= 100
