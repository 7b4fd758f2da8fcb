"""Log-likelihoods of answer continuations after prompts: per question, or several questions per
transformers forward pass.

A question is its (already cut) prompt's token ids and its continuations' ids. Both scorers here
have `score(questions) -> [[log P(continuation | prompt) for each continuation] per question]` and
are context managers (llama.cpp's, quantbench/gguf/scoring.py, holds a context).

Per question (a family's next_token_logits hook, which takes no padding): one pass over the
prompt scores the first token of every continuation; a continuation of several tokens gets a pass
of its own over prompt + continuation.

Batched (transformers, decoder-only, no hook): each question becomes one row, its prompt, plus one
row per continuation of several tokens, prompt + that continuation but its last token: the rows of
the per-question path, here stacked into one right-padded forward pass. Right padding is exact
without an attention mask or position ids: in a causal model a real token attends only to the
tokens before it, which are all real, and sits at its own position; the padding after it changes
only the padding's own outputs, which are never read. Logits are computed only at the positions
read (`logits_to_keep` with the positions' indices: the union over the rows, gathered per row), and
log-softmax (float32, as the per-question path) only on the rows read.
"""

from __future__ import annotations

from typing import Any, Sequence

Question = tuple[Sequence[int], Sequence[Sequence[int]]]  # prompt ids, continuations' ids
PAD_TOKEN = 0  # any id of the vocabulary: padding is never read


class PerQuestionChoiceScoring:
    """A TokenScorer's `log_probs`, one question at a time."""

    def __init__(self, scorer: Any):
        self._scorer = scorer

    def __enter__(self) -> PerQuestionChoiceScoring:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def score(self, questions: Sequence[Question]) -> list[list[float]]:
        return [self.score_one(list(prompt), continuations) for prompt, continuations in questions]

    def score_one(self, prompt: list[int], continuations: Sequence[Sequence[int]]) -> list[float]:
        prompt_last = self._scorer.log_probs(prompt, last=1)[0]
        scores = []
        for continuation in continuations:
            score = float(prompt_last[continuation[0]])
            if len(continuation) > 1:
                # rows for the continuation's tokens after the first
                log_probs = self._scorer.log_probs(prompt + list(continuation[:-1]), last=len(continuation) - 1)
                score += float(sum(log_probs[index, token] for index, token in enumerate(continuation[1:])))
            scores.append(score)
        return scores


class TransformersChoiceScoring:
    """Scores batches of questions on a decoder-only transformers model (no next_token_logits hook)."""

    def __init__(self, model: Any, device: str):
        self._model = model
        self._device = device

    def __enter__(self) -> TransformersChoiceScoring:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def score(self, questions: Sequence[Question]) -> list[list[float]]:
        """log P(continuation | prompt) of each question's continuations (each at least one token)."""
        import torch

        rows: list[list[int]] = []  # the sequences of the forward pass
        # where each log-probability is read: (question, continuation, row, position, token)
        reads: list[tuple[int, int, int, int, int]] = []
        for index, (prompt, continuations) in enumerate(questions):
            prompt_row = len(rows)
            rows.append(list(prompt))
            for choice, continuation in enumerate(continuations):
                reads.append((index, choice, prompt_row, len(prompt) - 1, continuation[0]))
                if len(continuation) > 1:
                    rows.append(list(prompt) + list(continuation[:-1]))
                    reads += [
                        (index, choice, len(rows) - 1, len(prompt) + offset, token)
                        for offset, token in enumerate(continuation[1:])
                    ]
        length = max(map(len, rows))
        input_ids = torch.full((len(rows), length), PAD_TOKEN, dtype=torch.long)
        for row, tokens in enumerate(rows):
            input_ids[row, : len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        positions = sorted({position for _, _, _, position, _ in reads})
        column = {position: at for at, position in enumerate(positions)}
        with torch.inference_mode():
            logits = self._model(
                input_ids=input_ids.to(self._device),
                use_cache=False,
                logits_to_keep=torch.as_tensor(positions, dtype=torch.long, device=self._device),
            ).logits
            # each (row, position) read once, whatever the number of tokens read there
            cells = sorted({(row, column[position]) for _, _, row, position, _ in reads})
            cell = {pair: at for at, pair in enumerate(cells)}
            rows_at = torch.as_tensor([row for row, _ in cells], device=logits.device)
            columns_at = torch.as_tensor([at for _, at in cells], device=logits.device)
            log_probs = torch.log_softmax(logits[rows_at, columns_at].float(), dim=-1)
            read_cells = torch.as_tensor(
                [cell[(row, column[position])] for _, _, row, position, _ in reads], device=log_probs.device
            )
            tokens = torch.as_tensor([token for *_, token in reads], device=log_probs.device)
            values = log_probs[read_cells, tokens].tolist()
        scores = [[0.0] * len(continuations) for _, continuations in questions]
        for (index, choice, *_), value in zip(reads, values):
            scores[index][choice] += value
        return scores
