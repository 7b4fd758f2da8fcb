"""The served-fidelity estimator (quantbench/quality/served.py) against the full-vocabulary KL divergence
and the offline scorer's top-k one, computed from the same logits: a lower bound of both, equal to the
offline one where the server's top k holds the reference's, 0 for the reference's own distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quantbench.quality.fidelity import kl_divergence, top_k_reference
from quantbench.quality.served import ServedTopK, served_fidelity_metrics, served_kl_divergence, top1_matches


def peaked_pair(tokens: int = 64, vocab: int = 2000, spread: float = 0.4, seed: int = 0):
    """Reference and candidate log-probabilities like a language model's: peaked (most mass in a few
    tokens), the candidate a perturbation of the reference."""
    generator = torch.Generator().manual_seed(seed)
    reference = torch.log_softmax(torch.randn(tokens, vocab, generator=generator) * 3.0, dim=-1)
    candidate = torch.log_softmax(reference + spread * torch.randn(tokens, vocab, generator=generator), dim=-1)
    return reference, candidate


def full_kl(reference: torch.Tensor, candidate: torch.Tensor) -> np.ndarray:
    return (reference.double().exp() * (reference.double() - candidate.double())).sum(-1).numpy()


def served_top_k(log_probs: torch.Tensor, k: int) -> ServedTopK:
    values, indices = log_probs.topk(k, dim=-1)
    return ServedTopK(indices.numpy().astype(np.int64), values.double().numpy())


def test_the_served_estimate_is_a_lower_bound_that_equals_the_offline_one_when_the_top_k_holds_the_reference():
    reference_lp, candidate_lp = peaked_pair()
    targets = torch.zeros(reference_lp.shape[0], dtype=torch.long)
    reference = top_k_reference(reference_lp, 32, targets)
    full = full_kl(reference_lp, candidate_lp)
    offline = kl_divergence(reference, candidate_lp).numpy()
    estimates = {k: served_kl_divergence(reference, served_top_k(candidate_lp, k)) for k in (8, 20, 64, 2000)}
    for k, served in estimates.items():
        # A coarsening of the offline partition (S is within the reference's top 32): never above either.
        assert (served <= offline + 1e-6).all(), k
        assert (served <= full + 1e-6).all(), k
        assert (served >= 0).all()
    assert estimates[8].mean() < estimates[20].mean() < estimates[64].mean()  # more returned, tighter
    np.testing.assert_allclose(estimates[2000], offline, atol=1e-6)  # the whole vocabulary: the offline value
    # Where the 64 returned tokens hold the reference's 32, the value is the offline one already.
    returned = served_top_k(candidate_lp, 64).indices
    holds = np.array([set(ref) <= set(got) for ref, got in zip(reference.top_indices.tolist(), returned.tolist())])
    assert holds.sum() > len(holds) / 2
    np.testing.assert_allclose(estimates[64][holds], offline[holds], atol=1e-6)
    assert (estimates[64][~holds] < offline[~holds]).all()
    assert estimates[64].mean() > 0.7 * full.mean()  # and close to the full one on peaked distributions


def test_the_reference_against_itself_scores_zero_and_full_agreement():
    reference_lp, _ = peaked_pair(tokens=16)
    reference = top_k_reference(reference_lp, 32, torch.zeros(16, dtype=torch.long))
    served = served_top_k(reference_lp, 20)
    assert served_kl_divergence(reference, served).max() < 1e-6
    assert top1_matches(reference, served).all()
    metrics = served_fidelity_metrics([(reference.rows(0, 8), served_top_k(reference_lp[:8], 20))] * 2, 0.95)
    assert metrics["served_top1_agree"] == 100.0 and metrics["served_fidelity_tokens"] == 16
    assert metrics["served_kld_mean"] < 1e-6 and 0 < metrics["served_fidelity_returned_mass"] <= 1


def test_top1_is_the_most_probable_returned_token_in_whatever_order_and_disagreement_counts():
    reference_lp, candidate_lp = peaked_pair(tokens=32, spread=2.0)
    reference = top_k_reference(reference_lp, 32, torch.zeros(32, dtype=torch.long))
    served = served_top_k(candidate_lp, 20)
    shuffled = ServedTopK(served.indices[:, ::-1].copy(), served.log_probs[:, ::-1].copy())
    expected = candidate_lp.argmax(-1).numpy() == reference_lp.argmax(-1).numpy()
    assert (top1_matches(reference, shuffled) == expected).all()
    assert 0 < expected.sum() < 32  # the perturbation moves some, not all
    metrics = served_fidelity_metrics([(reference, served)], 0.95)
    assert metrics["served_top1_agree"] == pytest.approx(100 * expected.mean())
    assert metrics["served_kld_mean"] > 0.01


def test_a_returned_mass_rounded_above_one_gives_a_finite_divergence():
    reference_lp = torch.log_softmax(torch.tensor([[5.0, 1.0, 0.0, -1.0]]), dim=-1)
    reference = top_k_reference(reference_lp, 2, torch.zeros(1, dtype=torch.long))
    probabilities = reference_lp.exp()[0].tolist()
    # The server returned every token, its probabilities summing to a little over 1 after rounding.
    rows = [[(token, float(np.log(p * 1.000001))) for token, p in enumerate(probabilities)]]
    value = served_kl_divergence(reference, ServedTopK.from_rows(rows))
    assert np.isfinite(value).all() and value[0] < 1e-4


def test_padding_when_a_server_returns_fewer_tokens_for_some_positions():
    served = ServedTopK.from_rows([[(3, -0.1), (4, -2.5)], [(7, -0.01)]])
    assert served.indices.tolist() == [[3, 4], [7, -1]] and served.returned_k() == (1, 2)
    assert served.top1().tolist() == [3, 7]
    with pytest.raises(ValueError, match="no log-probabilities for scored token 0"):
        ServedTopK.from_rows([[]])


def test_tiny_model_logits_through_the_estimator(compose_config):
    """A real (random-init) tiny-llama's next-token distributions: against noise added to its logits the
    served estimate stays below the full KL, moves with the noise, and is 0 without it."""
    from pathlib import Path

    from quantbench.config import registry
    from quantbench.models.source import resolve_model

    cfg = compose_config(["model=tiny-llama"])
    family = registry.families().get(cfg.model.family)
    spec = resolve_model(cfg.model, family, Path(cfg.cache_dir))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(spec.load_path, dtype=torch.float32).eval()
    ids = torch.arange(3, 67).view(1, -1)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
    reference_lp = torch.log_softmax(logits, -1)
    reference = top_k_reference(reference_lp, 32, torch.zeros(64, dtype=torch.long))
    assert served_kl_divergence(reference, served_top_k(reference_lp, 20)).max() < 1e-6
    means = []
    for noise in (0.05, 0.5):
        candidate = torch.log_softmax(
            logits + noise * torch.randn(logits.shape, generator=torch.Generator().manual_seed(1)), -1
        )
        served = served_kl_divergence(reference, served_top_k(candidate, 64))
        assert (served <= full_kl(reference_lp, candidate) + 1e-6).all()
        means.append(served.mean())
    assert 0 < means[0] < means[1]
