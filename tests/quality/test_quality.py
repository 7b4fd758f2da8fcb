"""Quality: perplexity, KL divergence to the reference precision, PubMedQA accuracy.

Correct by construction: perplexity equals the Hugging Face documentation's sliding-window
computation, the reference against itself has KL divergence 0 and 100 % top-1 agreement, and
PubMedQA scoring picks answers that a hand-made model forces.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from scipy import stats

from quantbench.backends.base import LoadRequest
from quantbench.config import registry
from quantbench.data.base import Sample
from quantbench.data.wikitext import WikiText2, split_articles, wikitext_text
from quantbench.errors import DatasetError, QuantbenchError
from quantbench.models.source import resolve_model
from quantbench.models.tokenizer import train_tokenizer
from quantbench.quality import selected_metrics
from quantbench.quality.fidelity import kl_divergence, top_k_reference
from quantbench.quality.intervals import clustered_mean_interval, wilson_interval
from quantbench.quality.pubmedqa import (
    CHOICES,
    answer_by_generation,
    answer_by_loglikelihood,
    choice_log_likelihoods,
    encode_choices,
    parse_answer,
)
from quantbench.quality.scoring import TokenScorer
from quantbench.quality.text import evaluate_text_metrics
from quantbench.quality.windows import make_windows
from quantbench.runtime.device import resolve_device

CPU = resolve_device("cpu")


# --- config ---------------------------------------------------------------------------------


def test_default_is_a_pure_speed_run(compose_config):
    cfg = compose_config([])
    assert selected_metrics(cfg) == []
    assert cfg.quality.context_tokens == 512 and cfg.quality.limit is None


def test_quality_metrics_and_limit_from_the_command_line(compose_config):
    cfg = compose_config(["quality=[ppl,kld,pubmedqa]", "quality.limit=7", "quality.kld.top_k=8"])
    assert selected_metrics(cfg) == ["ppl", "kld", "pubmedqa"]
    assert cfg.quality.limit == 7 and cfg.quality.kld.top_k == 8 and cfg.quality.kld.reference == "auto"
    assert cfg.quality.pubmedqa.split == "test" and cfg.quality.pubmedqa.mode == "loglikelihood"
    # the data paths follow quality.data_dir
    cfg = compose_config(["quality=[pubmedqa]", "quality.data_dir=/data"])
    assert cfg.quality.pubmedqa.path == "/data/pubmedqa/ori_pqal.json"
    assert cfg.quality.text.path == "/data/wikitext-2/test.txt"


def test_misspelt_quality_key_is_an_error(compose_config):
    with pytest.raises(ConfigCompositionException, match="top_kk"):
        compose_config(["quality=[kld]", "quality.kld.top_kk=8"])


# --- data -----------------------------------------------------------------------------------


def test_wikitext_articles_join_back_to_the_file(shared_data):
    config = OmegaConf.create(
        {"path": str(shared_data / "wikitext-2" / "test.txt"), "hub_id": "wikitext", "split": "test", "limit": None}
    )
    text = wikitext_text(config)
    samples = WikiText2().load(config)
    assert "".join(sample.text for sample in samples) == text
    assert len(samples) > 50 and samples[0].meta["title"] == "Robert <unk>"
    assert len(WikiText2().load(OmegaConf.merge(config, {"limit": 3}))) == 3


def test_wikitext_missing_file_says_which(tmp_path):
    config = OmegaConf.create({"path": str(tmp_path / "nope.txt"), "hub_id": None, "split": "test", "limit": None})
    with pytest.raises(DatasetError, match="nope.txt"):
        wikitext_text(config)


def test_split_articles_without_headings_keeps_the_text():
    assert split_articles("just text\n") == ["just text\n"]
    assert split_articles(" = A = \n a \n = B = \n b \n") == [" = A = \n a \n", " = B = \n b \n"]


# --- windows and intervals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_tokens", "context", "stride"), [(10, 4, 4), (10, 4, 2), (13, 5, 1), (3, 4, 4), (100, 16, 16), (101, 16, 7)]
)
def test_windows_score_each_token_once_within_the_context(n_tokens, context, stride):
    windows = make_windows(n_tokens, context, stride)
    scored = [
        window.begin + offset for window in windows for offset in range(window.first_scored, window.end - window.begin)
    ]
    assert len(scored) == len(set(scored)) and 0 not in scored
    assert all(window.end - window.begin <= context for window in windows)
    if stride < context:  # overlapping windows: every token after the first is scored
        assert sorted(scored) == list(range(1, n_tokens))
    else:  # a window's first token has no prediction
        assert sorted(scored) == [t for t in range(1, n_tokens) if t % stride and t < n_tokens]


def test_window_settings_are_checked():
    with pytest.raises(QuantbenchError, match="stride"):
        make_windows(100, 8, 9)
    with pytest.raises(QuantbenchError, match="context_tokens"):
        make_windows(100, 1, 1)
    assert len(make_windows(1000, 10, 10, limit=3)) == 3


def test_wilson_interval_matches_its_formula():
    successes, trials, z = 37, 50, stats.norm.ppf(0.975)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    low, high = wilson_interval(successes, trials, 0.95)
    assert low == pytest.approx(centre - half, rel=1e-9) and high == pytest.approx(centre + half, rel=1e-9)


def test_clustered_interval_of_equal_windows_is_the_t_interval_of_window_means():
    rng = np.random.default_rng(0)
    means = rng.normal(3.0, 0.5, size=12)
    result = clustered_mean_interval(means * 64, [64] * 12, 0.95)
    low, high = stats.t.interval(0.95, df=11, loc=means.mean(), scale=stats.sem(means))
    assert result.mean == pytest.approx(means.mean())
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-9)
    assert math.isnan(clustered_mean_interval([5.0], [10], 0.95).stderr)


# --- KL divergence --------------------------------------------------------------------------


def test_kl_with_the_whole_vocabulary_is_the_exact_kl():
    torch.manual_seed(0)
    p = torch.log_softmax(torch.randn(6, 50) * 3, dim=-1)
    q = torch.log_softmax(torch.randn(6, 50) * 3, dim=-1)
    targets = torch.randint(0, 50, (6,))
    exact = (p.double().exp() * (p.double() - q.double())).sum(dim=-1)
    assert torch.allclose(kl_divergence(top_k_reference(p, 50, targets), q), exact, atol=1e-6)
    # with fewer tokens kept it is the KL of the coarsened distributions: a lower bound
    coarse = kl_divergence(top_k_reference(p, 5, targets), q)
    assert (coarse <= exact + 1e-9).all() and (coarse > 0).all()
    assert kl_divergence(top_k_reference(p, 5, targets), p).abs().max() == 0


# --- a real tiny model --------------------------------------------------------------------------


def load_tiny(compose_config, precision: str, overrides=()):
    cfg = compose_config(["model=tiny-llama", f"precision={precision}", *overrides])
    family = registry.families().get("decoder")
    cache = Path(cfg.cache_dir)
    spec = resolve_model(cfg.model, family, cache)
    backend = registry.backends().get(cfg.precision.backend)
    loaded = backend.load(LoadRequest(model=spec, family=family, precision=cfg.precision, device=CPU, cache_dir=cache))
    return cfg, family, spec, loaded


def text_metrics(cfg, family, spec, loaded):
    scorer = TokenScorer(family, loaded.model, loaded.processor, CPU.torch_device)
    return evaluate_text_metrics(
        cfg.quality, scorer, job_precision=cfg.precision, spec=spec, device=CPU, cache_dir=Path(cfg.cache_dir)
    )


TEXT_OVERRIDES = ["quality.context_tokens=64", "quality.stride=48", "quality.max_tokens=600"]


def test_perplexity_equals_the_straightforward_sliding_window_computation(compose_config, shared_data):
    cfg, family, spec, loaded = load_tiny(
        compose_config, "fp32", ["quality=[ppl]", f"quality.data_dir={shared_data}", *TEXT_OVERRIDES]
    )
    metrics = text_metrics(cfg, family, spec, loaded)

    # The Hugging Face perplexity guide's loop, with the model's own loss.
    text = (shared_data / "wikitext-2" / "test.txt").read_text()
    ids = torch.tensor(loaded.processor(text, add_special_tokens=False)["input_ids"][:600])
    nll_sum, n_scored, previous_end = 0.0, 0, 0
    for begin in range(0, len(ids), 48):
        end = min(begin + 64, len(ids))
        window = ids[begin:end].unsqueeze(0)
        labels = window.clone()
        labels[:, : -(end - previous_end)] = -100
        with torch.no_grad():
            loss = loaded.model(window, labels=labels).loss
        n_valid = int((labels[:, 1:] != -100).sum())
        nll_sum += float(loss) * n_valid
        n_scored += n_valid
        previous_end = end
        if end == len(ids):
            break
    expected = math.exp(nll_sum / n_scored)
    assert metrics["ppl_n_tokens"] == n_scored == 599
    assert abs(metrics["ppl"] / expected - 1) < 1e-4
    assert metrics["ppl_ci_low"] < metrics["ppl"] < metrics["ppl_ci_high"]
    assert (metrics["ppl_context_tokens"], metrics["ppl_stride"]) == (64, 48)


def test_reference_against_itself_is_zero_and_is_cached(compose_config, shared_data, monkeypatch, tmp_path):
    # A cache of its own: the session's cache holds the references other tests computed.
    overrides = [
        "quality=[ppl,kld]",
        f"quality.data_dir={shared_data}",
        "quality.kld.top_k=16",
        *TEXT_OVERRIDES,
        f"cache_dir={tmp_path / 'cache'}",
    ]
    cfg, family, spec, loaded = load_tiny(compose_config, "fp32", overrides)
    computed = text_metrics(cfg, family, spec, loaded)  # computes and caches the reference
    entries = list((Path(cfg.cache_dir) / "reference").glob("tiny-llama-fp32-*"))
    assert len(entries) == 1
    meta = json.loads((entries[0] / "reference.json").read_text())
    assert meta["top_k"] == 16 and meta["n_tokens"] == computed["kld_n_tokens"] == computed["ppl_n_tokens"]
    again = text_metrics(cfg, family, spec, loaded)  # reads it back
    for metrics in (computed, again):
        assert metrics["kld_mean"] == 0 and metrics["kld_max"] == 0 and metrics["kld_p99"] == 0
        assert metrics["top1_agree"] == 100.0
        assert metrics["kld_reference"] == "fp32"

    # Another precision uses the cached reference without loading fp32 again...
    def no_reference_load(*args, **kwargs):
        raise AssertionError("the cached reference should have been used")

    monkeypatch.setattr("quantbench.quality.text.load_reference_model", no_reference_load)
    cfg, family, spec, loaded = load_tiny(compose_config, "nf4", overrides)
    nf4 = text_metrics(cfg, family, spec, loaded)
    assert nf4["kld_mean"] > 0 and nf4["kld_mean_ci_low"] <= nf4["kld_mean"] <= nf4["kld_mean_ci_high"]
    assert nf4["kld_median"] <= nf4["kld_p90"] <= nf4["kld_p99"] <= nf4["kld_max"]
    assert nf4["top1_agree"] < 100.0
    assert nf4["ppl_n_tokens"] == computed["ppl_n_tokens"]


def test_a_missing_reference_is_computed_with_the_reference_precision(compose_config, shared_data, monkeypatch):
    overrides = [
        "quality=[kld]",
        f"quality.data_dir={shared_data}",
        "quality.kld.top_k=4",
        "quality.max_tokens=200",
        "quality.context_tokens=32",
        "quality.stride=32",
    ]
    cfg, family, spec, loaded = load_tiny(compose_config, "bf16", overrides)
    from quantbench.quality import text as text_module

    loads = []
    real = text_module.load_reference_model
    monkeypatch.setattr(
        text_module, "load_reference_model", lambda precision, *a: loads.append(precision.name) or real(precision, *a)
    )
    bf16 = text_metrics(cfg, family, spec, loaded)
    assert loads == ["fp32"]
    assert bf16["kld_reference"] == "fp32" and bf16["kld_mean"] > 0
    # the fp32 job now finds the reference the bf16 job computed, and is 0 against it
    cfg, family, spec, loaded = load_tiny(compose_config, "fp32", overrides)
    fp32 = text_metrics(cfg, family, spec, loaded)
    assert loads == ["fp32"] and fp32["kld_mean"] == 0 and fp32["top1_agree"] == 100.0


# --- PubMedQA ---------------------------------------------------------------------------------


class ForcingModel:
    """A causal LM that puts almost all probability on the continuation `forced` picks for a prompt."""

    def __init__(self, tokenizer, forced: dict[str, str]):
        self.tokenizer = tokenizer
        self.forced = forced  # question -> choice
        self.config = SimpleNamespace(is_encoder_decoder=False, max_position_embeddings=4096)
        self.calls = 0

    def __call__(self, input_ids, use_cache=False, logits_to_keep=0):
        self.calls += 1
        logits = torch.zeros(*input_ids.shape, len(self.tokenizer))
        for row, ids in enumerate(input_ids.tolist()):
            text = self.tokenizer.decode(ids)
            question = next(q for q in self.forced if q in text)
            prompt = text[: text.index("Answer:") + len("Answer:")]
            prompt_ids, continuations = encode_choices(self.tokenizer, prompt, CHOICES)
            wanted = continuations[CHOICES.index(self.forced[question])]
            for offset, token in enumerate(wanted):
                position = len(prompt_ids) - 1 + offset
                if position < len(ids):
                    logits[row, position, token] = 20.0
        if isinstance(logits_to_keep, torch.Tensor):  # the positions' indices (batched scoring)
            return SimpleNamespace(logits=logits[:, logits_to_keep])
        return SimpleNamespace(logits=logits[:, -logits_to_keep:])


def pubmedqa_samples() -> list[Sample]:
    questions = {"Is water wet?": "yes", "Do fish fly?": "no", "Will it rain?": "maybe", "Are cats dogs?": "no"}
    return [
        Sample(id=str(index), text=f"Abstract: Some findings.\nQuestion: {question}\nAnswer:", answer=answer)
        for index, (question, answer) in enumerate(questions.items())
    ]


def test_pubmedqa_loglikelihood_picks_the_forced_answer():
    tokenizer = train_tokenizer()
    samples = pubmedqa_samples()
    forced = {"Is water wet?": "yes", "Do fish fly?": "no", "Will it rain?": "maybe", "Are cats dogs?": "maybe"}
    model = ForcingModel(tokenizer, forced)
    scorer = TokenScorer(SimpleNamespace(name="decoder"), model, tokenizer, "cpu")
    answers = answer_by_loglikelihood(scorer, samples, max_prompt_tokens=2048, tick=None)
    assert [answer.prediction for answer in answers] == ["yes", "no", "maybe", "maybe"]
    assert [answer.correct for answer in answers] == [True, True, True, False]
    for answer in answers:
        chosen = answer.log_likelihoods[answer.prediction]
        assert chosen > -0.1 and all(
            chosen > score for choice, score in answer.log_likelihoods.items() if choice != answer.prediction
        )


def test_pubmedqa_choice_tokens_follow_lm_eval():
    tokenizer = train_tokenizer()
    prompt = "Abstract: x\nQuestion: y?\nAnswer:"
    prompt_ids, continuations = encode_choices(tokenizer, prompt, CHOICES)
    for choice, continuation in zip(CHOICES, continuations):
        assert tokenizer.decode(prompt_ids + continuation) == prompt + " " + choice


def test_choice_log_likelihoods_equal_a_plain_forward_pass(compose_config):
    cfg, family, spec, loaded = load_tiny(compose_config, "fp32")
    scorer = TokenScorer(family, loaded.model, loaded.processor, "cpu")
    prompt = "Abstract: The trial enrolled patients.\nQuestion: Did it work?\nAnswer:"
    prompt_ids, continuations = encode_choices(loaded.processor, prompt, CHOICES)
    assert max(len(continuation) for continuation in continuations) > 1  # the multi-token path runs
    scores, truncated = choice_log_likelihoods(scorer, prompt_ids, continuations, max_tokens=1024)
    assert not truncated
    for continuation, score in zip(continuations, scores):
        with torch.no_grad():
            log_probs = torch.log_softmax(loaded.model(torch.tensor([prompt_ids + continuation])).logits[0], dim=-1)
        expected = sum(float(log_probs[len(prompt_ids) - 1 + index, token]) for index, token in enumerate(continuation))
        assert score == pytest.approx(expected, abs=1e-4)
    # a prompt longer than the context keeps its end, the same for every choice
    cut_scores, truncated = choice_log_likelihoods(scorer, prompt_ids, continuations, max_tokens=8)
    assert truncated and cut_scores != scores


def test_pubmedqa_generate_mode_parses_the_answer():
    assert parse_answer("Yes, it does.") == "yes"
    assert parse_answer("It is unknown; maybe.") == "maybe"
    assert parse_answer("Nobody knows") is None  # "no" only as a word
    replies = iter(["Yes.", "I think no", "unclear", "No!"])

    class Replying:
        def prepare_batch(self, samples, processor, **kwargs):
            assert samples[0].text.startswith("Answer the question")
            return SimpleNamespace(n_input_tokens=10)

        def generate(self, model, batch, max_new_tokens, clock):
            return None

        def decode(self, processor, generated):
            return [next(replies)]

    settings = OmegaConf.create({"max_prompt_tokens": 512, "chat_template": True, "max_new_tokens": 8})
    answers = answer_by_generation(Replying(), None, None, pubmedqa_samples(), settings, "cpu", None)
    assert [answer.prediction for answer in answers] == ["yes", "no", None, "no"]
    assert [answer.correct for answer in answers] == [True, True, False, True]


def test_pubmedqa_test_split_is_the_500_questions(compose_config, shared_data):
    from quantbench.quality.sources import read_samples

    cfg = compose_config(["quality=[pubmedqa]", f"quality.data_dir={shared_data}"])
    samples = read_samples(cfg.quality.pubmedqa)
    labels = json.loads((shared_data / "pubmedqa" / "test_ground_truth.json").read_text())
    assert len(samples) == 500 and {sample.id: sample.answer for sample in samples} == labels
    assert samples[0].text.startswith("Abstract: ") and samples[0].text.endswith("\nAnswer:")
    assert len(read_samples(cfg.quality.pubmedqa, split="all")) == 1000
