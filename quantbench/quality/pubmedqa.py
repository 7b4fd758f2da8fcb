"""PubMedQA accuracy, lm-evaluation-harness protocol, with per-question predictions.

loglikelihood (default): for each choice c in yes/no/maybe, log P(" " + c | prompt) summed over
the choice's tokens; the prediction is the argmax (lm-eval's `acc`). As in lm-eval, the prompt
and prompt + choice are tokenized without special tokens and the choice's tokens are what the
whole adds beyond the prompt; a prompt longer than the model's context loses its beginning.
generate: the model answers greedily (in its chat template where it has one) and the first
yes/no/maybe in the answer is the prediction; an answer with none counts as wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from omegaconf import DictConfig

from quantbench.data.base import Sample
from quantbench.data.pubmedqa import CHOICES
from quantbench.errors import QuantbenchError
from quantbench.quality.intervals import wilson_interval
from quantbench.quality.scoring import QualityUnavailable, TokenScorer, context_limit_tokens, text_tokenizer
from quantbench.quality.sources import read_samples

if TYPE_CHECKING:
    import polars as pl

MODES = ("loglikelihood", "generate")
TARGET_DELIMITER = " "  # lm-eval puts a space between the prompt and the choice
ANSWER_PATTERN = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)
GENERATE_INSTRUCTION = "Answer the question about the abstract with yes, no or maybe.\n\n"
DEFAULT_BATCH_SIZE = 1  # quality.pubmedqa.batch_size's default (config/schema/quality.py says why)

Tick = Callable[[str, int, int], None]


@dataclass
class Answer:
    question_id: str
    answer: str  # the label
    prediction: str | None  # None: a generated answer without yes/no/maybe
    log_likelihoods: dict[str, float] | None = None
    generated_text: str | None = None
    n_prompt_tokens: int = 0
    truncated: bool = False

    @property
    def correct(self) -> bool:
        return self.prediction == self.answer


def encode_choices(tokenizer: Any, prompt: str, choices: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """The prompt's tokens and each choice's continuation tokens, the lm-eval way."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    continuations = []
    for choice in choices:
        whole = list(tokenizer(prompt + TARGET_DELIMITER + choice, add_special_tokens=False)["input_ids"])
        if whole[: len(prompt_ids)] == prompt_ids and len(whole) > len(prompt_ids):
            continuations.append(whole[len(prompt_ids) :])
        else:  # the choice merged with the prompt's last token: score it tokenized on its own
            continuations.append(list(tokenizer(TARGET_DELIMITER + choice, add_special_tokens=False)["input_ids"]))
    return prompt_ids, continuations


def cut_prompt(prompt_ids: list[int], continuations: list[list[int]], max_tokens: int) -> tuple[list[int], bool]:
    """The prompt's last tokens that leave room for its longest continuation in `max_tokens`, and
    whether it was cut. The prompt is cut the same for every choice."""
    longest = max(len(continuation) for continuation in continuations)
    keep = max_tokens - longest + 1
    if keep < 1:
        raise QuantbenchError(f"quality.pubmedqa.max_prompt_tokens ({max_tokens}) leaves no room for a prompt")
    return prompt_ids[-keep:], len(prompt_ids) > keep


def choice_log_likelihoods(
    scorer: TokenScorer, prompt_ids: list[int], continuations: list[list[int]], max_tokens: int
) -> tuple[list[float], bool]:
    """log P(continuation | prompt) for each continuation, and whether the prompt was cut: one question
    through the scorer's `log_probs` (the per-question path: a pass over the prompt, plus one per
    continuation of several tokens). The reference the batched path is checked against."""
    from quantbench.quality.choice_scoring import PerQuestionChoiceScoring

    prompt_ids, truncated = cut_prompt(prompt_ids, continuations, max_tokens)
    return PerQuestionChoiceScoring(scorer).score_one(prompt_ids, continuations), truncated


def check_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise QuantbenchError(f"quality.pubmedqa.batch_size must be at least 1 (got {batch_size})")
    return batch_size


def answer_by_loglikelihood(
    scorer: TokenScorer,
    samples: Sequence[Sample],
    max_prompt_tokens: int,
    tick: Tick | None,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> list[Answer]:
    """Every question's answer by log-likelihood through the scorer's `choice_scoring`, logits only
    where read: `batch_size` questions of similar length per transformers forward pass (llama.cpp:
    one per decode call); None: the per-question path (`choice_log_likelihoods`, for comparisons)."""
    if not scorer.is_causal:
        raise QualityUnavailable(
            "PubMedQA log-likelihood scoring needs a decoder-only model; use quality.pubmedqa.mode=generate"
        )
    tokenizer = text_tokenizer(scorer.processor)
    limit = context_limit_tokens(scorer.model)
    max_tokens = min(max_prompt_tokens, limit) if limit else max_prompt_tokens
    encoded = [encode_choices(tokenizer, sample.text, CHOICES) for sample in samples]
    questions = []  # (cut prompt, continuations, whether cut, the prompt's tokens before the cut)
    for prompt_ids, continuations in encoded:
        cut, truncated = cut_prompt(prompt_ids, continuations, max_tokens)
        questions.append((cut, continuations, truncated, len(prompt_ids)))
    scores: list[list[float] | None] = [None] * len(samples)
    if batch_size is None:
        for index, (prompt, continuations, _, _) in enumerate(questions):
            scores[index] = choice_log_likelihoods(scorer, prompt, continuations, max_tokens)[0]
            if tick:
                tick("pubmedqa", index + 1, len(samples))
    elif questions:
        # Questions of similar length share a batch: less padding. Each question's scores do not
        # depend on its batch.
        order = sorted(range(len(questions)), key=lambda index: len(questions[index][0]))
        n_seq = min(check_batch_size(batch_size), len(questions))
        tokens_per_seq = max(len(prompt) + max(map(len, conts)) - 1 for prompt, conts, _, _ in questions)
        with scorer.choice_scoring(n_seq, tokens_per_seq) as scoring:
            for start in range(0, len(order), n_seq):
                batch = order[start : start + n_seq]
                for index, values in zip(batch, scoring.score([questions[index][:2] for index in batch])):
                    scores[index] = values
                if tick:
                    tick("pubmedqa", start + len(batch), len(samples))
    answers = []
    for sample, (_, _, truncated, n_prompt_tokens), values in zip(samples, questions, scores):
        best = max(range(len(CHOICES)), key=lambda index: values[index])
        answers.append(
            Answer(
                question_id=sample.id,
                answer=sample.answer,
                prediction=CHOICES[best],
                log_likelihoods=dict(zip(CHOICES, values)),
                n_prompt_tokens=min(n_prompt_tokens, max_tokens),
                truncated=truncated,
            )
        )
    return answers


def parse_answer(text: str) -> str | None:
    match = ANSWER_PATTERN.search(text)
    return match.group(1).lower() if match else None


def answer_by_generation(
    family: Any,
    model: Any,
    processor: Any,
    samples: Sequence[Sample],
    settings: DictConfig,
    device: str,
    tick: Tick | None,
) -> list[Answer]:
    answers = []
    for done, sample in enumerate(samples):
        prompt = Sample(id=sample.id, text=GENERATE_INSTRUCTION + sample.text, answer=sample.answer)
        batch = family.prepare_batch(
            [prompt],
            processor,
            device=device,
            max_input_tokens=int(settings.max_prompt_tokens),
            chat_template=bool(settings.chat_template),
        )
        generated = family.generate(model, batch, max_new_tokens=int(settings.max_new_tokens), clock=None)
        text = family.decode(processor, generated)[0]
        answers.append(
            Answer(
                question_id=sample.id,
                answer=sample.answer,
                prediction=parse_answer(text),
                generated_text=text,
                n_prompt_tokens=batch.n_input_tokens,
            )
        )
        if tick:
            tick("pubmedqa", done + 1, len(samples))
    return answers


def accuracy_metrics(answers: Sequence[Answer], confidence: float) -> dict[str, Any]:
    n = len(answers)
    correct = sum(answer.correct for answer in answers)
    low, high = wilson_interval(correct, n, confidence)
    return {
        "pubmedqa_acc": correct / n if n else float("nan"),
        "pubmedqa_acc_ci_low": low,
        "pubmedqa_acc_ci_high": high,
        "pubmedqa_n": n,
        "pubmedqa_unparsed": sum(answer.prediction is None for answer in answers),
        "pubmedqa_truncated": sum(answer.truncated for answer in answers),
    }


def predictions_frame(answers: Sequence[Answer]) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(
        {
            "question_id": [answer.question_id for answer in answers],
            "answer": [answer.answer for answer in answers],
            "prediction": [answer.prediction for answer in answers],
            "correct": [answer.correct for answer in answers],
            **{
                f"loglik_{choice}": [
                    answer.log_likelihoods[choice] if answer.log_likelihoods else None for answer in answers
                ]
                for choice in CHOICES
            },
            "generated_text": [answer.generated_text for answer in answers],
            "n_prompt_tokens": [answer.n_prompt_tokens for answer in answers],
            "truncated": [answer.truncated for answer in answers],
        },
        schema_overrides={f"loglik_{choice}": pl.Float64 for choice in CHOICES}
        | {"generated_text": pl.String, "prediction": pl.String},
    )


def evaluate_pubmedqa(
    quality: DictConfig, scorer: TokenScorer, *, device: str, tick: Tick | None = None
) -> tuple[dict[str, Any], pl.DataFrame]:
    settings = quality.pubmedqa
    if settings.mode not in MODES:
        raise QuantbenchError(f"unknown quality.pubmedqa.mode '{settings.mode}'; choose one of: {', '.join(MODES)}")
    batch_size = check_batch_size(int(settings.batch_size))
    samples = read_samples(settings, limit=quality.limit)
    if settings.mode == "loglikelihood":
        answers = answer_by_loglikelihood(scorer, samples, int(settings.max_prompt_tokens), tick, batch_size)
    else:
        answers = answer_by_generation(scorer.family, scorer.model, scorer.processor, samples, settings, device, tick)
    metrics = accuracy_metrics(answers, float(quality.confidence))
    metrics["pubmedqa_mode"] = str(settings.mode)
    metrics["pubmedqa_split"] = str(settings.split)
    return metrics, predictions_frame(answers)
