"""PubMedQA scoring with logits only where read gives the per-question path's log-likelihoods:
transformers (several questions' right-padded rows per forward pass) and llama.cpp (the batch API,
one question per decode), on tiny-llama, with continuations of several tokens and prompts cut to
max_prompt_tokens."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from quantbench.backends.base import LoadRequest
from quantbench.config import registry
from quantbench.data.base import Sample
from quantbench.data.pubmedqa import CHOICES
from quantbench.errors import QuantbenchError
from quantbench.models.source import resolve_model
from quantbench.quality.pubmedqa import answer_by_loglikelihood, encode_choices, evaluate_pubmedqa
from quantbench.quality.scoring import TokenScorer, text_tokenizer
from quantbench.runtime.device import resolve_device

CPU = resolve_device("cpu")
TOLERANCE_NATS = 1e-3
MAX_PROMPT_TOKENS = 40  # some of the questions below are longer: their prompts are cut
FINDINGS = [
    "Some findings.",
    "The randomised trial enrolled 120 patients with chronic pain over two years.",
    "Mortality fell.",
    "We measured blood pressure, heart rate and cholesterol in 300 adults aged 40 to 70, twice, a year apart, "
    "and compared the groups that took the drug with those that did not.",
    "No effect was seen in mice; rats were not tested.",
]


def samples() -> list[Sample]:
    return [
        Sample(id=str(index), text=f"Abstract: {text}\nQuestion: Did it work?\nAnswer:", answer="yes")
        for index, text in enumerate(FINDINGS)
    ]


def load(compose_config, precision: str):
    cfg = compose_config(["model=tiny-llama", f"precision={precision}"])
    family = registry.families().get("decoder")
    cache = Path(cfg.cache_dir)
    spec = resolve_model(cfg.model, family, cache)
    backend = registry.backends().get(cfg.precision.backend)
    request = LoadRequest(model=spec, family=family, precision=cfg.precision, device=CPU, cache_dir=cache)
    return family, backend.load(request)


def assert_batched_equals_per_question(scorer) -> None:
    tokenizer = text_tokenizer(scorer.processor)
    continuations = encode_choices(tokenizer, samples()[0].text, CHOICES)[1]
    assert max(map(len, continuations)) > 1  # the continuation path of several tokens runs
    per_question = answer_by_loglikelihood(scorer, samples(), MAX_PROMPT_TOKENS, None, batch_size=None)
    assert 0 < sum(answer.truncated for answer in per_question) < len(per_question)
    for batch_size in (1, 3, 8):
        batched = answer_by_loglikelihood(scorer, samples(), MAX_PROMPT_TOKENS, None, batch_size=batch_size)
        for old, new in zip(per_question, batched):
            assert (new.question_id, new.prediction, new.truncated, new.n_prompt_tokens) == (
                old.question_id,
                old.prediction,
                old.truncated,
                old.n_prompt_tokens,
            )
            for choice in CHOICES:
                assert new.log_likelihoods[choice] == pytest.approx(old.log_likelihoods[choice], abs=TOLERANCE_NATS)


def test_transformers_batched_scores_equal_the_per_question_path(compose_config):
    family, loaded = load(compose_config, "fp32")
    assert_batched_equals_per_question(TokenScorer(family, loaded.model, loaded.processor, "cpu"))


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_llama_cpp_batched_scores_equal_the_per_question_path(compose_config):
    from quantbench.engines.llama_cpp import open_llama
    from quantbench.quality.llama_cpp_logits import LlamaCppScorer

    family, loaded = load(compose_config, "gguf-q8_0")  # the GGUF file the other llama.cpp tests use
    llm = open_llama(loaded.model.path, n_ctx=64, threads=1, logits_all=True, seed=0, gpu=False)
    assert_batched_equals_per_question(LlamaCppScorer(llm, family, loaded.processor, 1024))


def test_scorers_that_batching_would_bypass_score_one_question_at_a_time(compose_config):
    """A family's next_token_logits hook (no padding) and a scorer with its own log_probs (a quantized
    cache read in chunks) keep the per-question path: their scores come only through log_probs."""
    from quantbench.quality.cache_scorer import ChunkedCacheScorer
    from quantbench.quality.choice_scoring import PerQuestionChoiceScoring, TransformersChoiceScoring

    family, loaded = load(compose_config, "fp32")
    plain = TokenScorer(family, loaded.model, loaded.processor, "cpu")
    hooked = TokenScorer(SimpleNamespace(next_token_logits=lambda *args: None), loaded.model, loaded.processor, "cpu")
    chunked = ChunkedCacheScorer(family, loaded.model, loaded.processor, "cpu", make_cache=dict, chunk_tokens=128)
    assert isinstance(plain.choice_scoring(4, 64), TransformersChoiceScoring)
    assert isinstance(hooked.choice_scoring(4, 64), PerQuestionChoiceScoring)
    assert isinstance(chunked.choice_scoring(4, 64), PerQuestionChoiceScoring)


def test_a_batch_size_below_one_is_an_error(compose_config):
    cfg = compose_config(["model=tiny-llama", "quality=[pubmedqa]", "quality.pubmedqa.batch_size=0"])
    scorer = SimpleNamespace(is_causal=True)
    with pytest.raises(QuantbenchError, match=r"quality.pubmedqa.batch_size must be at least 1 \(got 0\)"):
        evaluate_pubmedqa(cfg.quality, scorer, device="cpu")
