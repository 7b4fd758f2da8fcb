"""Log-likelihoods of continuations after prompts, several prompts per llama.cpp decode.

A context made for `n_seq` sequences (each its own part of the KV cache, as in decode.py) holds one
prompt per sequence. One `llama_decode` evaluates every prompt of a batch and asks for logits only at
each prompt's last token: that row scores the first token of every continuation. A continuation of
several tokens is then decoded after its prompt in the same sequence (logits at each of its tokens
but the last), all the batch's prompts in one call per continuation index, and removed again
(`llama_memory_seq_rm`) before the next: the prompt is evaluated once and every continuation sees
exactly its own prompt + itself. Only the rows read are turned into log-probabilities (float64).
"""

from __future__ import annotations

from typing import Any, Sequence

from quantbench.gguf.decode import Entry, decode_entries

Question = tuple[Sequence[int], Sequence[Sequence[int]]]  # prompt ids, continuations' ids


def log_softmax_at(logits: Any, tokens: Sequence[int]) -> list[float]:
    """log P(token) under one row of logits, for each of `tokens`, in float64."""
    import numpy as np

    row = logits.astype(np.float64)
    peak = row.max()
    log_total = peak + np.log(np.exp(row - peak).sum())
    return [float(row[token] - log_total) for token in tokens]


class ChoiceScoringContext:
    """A llama.cpp context on an opened model for up to `n_seq` questions per batch of up to
    `tokens_per_seq` tokens each (prompt + continuation minus its last token). `base_params`: the
    context parameters to start from (the job's `Llama.context_params`: its threads, KV cache type,
    flash attention), sized here for the batches."""

    def __init__(self, llama_cpp: Any, model: Any, base_params: Any, *, n_seq: int, tokens_per_seq: int):
        params = type(base_params).from_buffer_copy(base_params)
        # Sequences do not share the cache (kv_unified off): each attends over its own cells only.
        params.kv_unified = False
        params.n_seq_max = n_seq
        params.n_ctx = n_seq * tokens_per_seq
        # A batch's prompts are one decode call (llama.cpp splits it into equal-length parts per sequence).
        params.n_batch = params.n_ubatch = n_seq * tokens_per_seq
        self._llama_cpp = llama_cpp
        self._n_seq = n_seq
        self._tokens_per_seq = tokens_per_seq
        self._ctx = llama_cpp.llama_init_from_model(model, params)
        if not self._ctx:
            raise RuntimeError(
                f"llama.cpp could not make a scoring context for {n_seq} sequences of {tokens_per_seq} tokens "
                "(lower quality.pubmedqa.batch_size; its log says why)"
            )
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)

    def close(self) -> None:
        if self._ctx:
            self._llama_cpp.llama_batch_free(self._batch)
            self._llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> ChoiceScoringContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def score(self, questions: Sequence[Question]) -> list[list[float]]:
        """log P(continuation | prompt) of each question's continuations (each at least one token)."""
        longest = max(len(prompt) + max(map(len, continuations)) - 1 for prompt, continuations in questions)
        if len(questions) > self._n_seq or longest > self._tokens_per_seq:
            raise ValueError(
                f"{len(questions)} questions of up to {longest} tokens do not fit the scoring context's "
                f"{self._n_seq} sequences of {self._tokens_per_seq}"
            )
        self._llama_cpp.llama_memory_clear(self._memory, True)
        prompts = [list(prompt) for prompt, _ in questions]
        entries: list[Entry] = [
            (seq, position, token, position == len(prompt) - 1)
            for seq, prompt in enumerate(prompts)
            for position, token in enumerate(prompt)
        ]
        rows = decode_entries(self._llama_cpp, self._ctx, self._batch, entries, self._n_vocab)
        scores = [
            log_softmax_at(row, [continuation[0] for continuation in continuations])
            for row, (_, continuations) in zip(rows, questions)
        ]
        for choice in range(max(len(continuations) for _, continuations in questions)):
            # (sequence, continuation) of every question whose continuation `choice` has tokens after its first
            longer = [
                (seq, continuations[choice])
                for seq, (_, continuations) in enumerate(questions)
                if choice < len(continuations) and len(continuations[choice]) > 1
            ]
            if longer:
                self._score_rest(prompts, longer, choice, scores)
        return scores

    def _score_rest(
        self, prompts: list[list[int]], longer: list[tuple[int, Sequence[int]]], choice: int, scores: list[list[float]]
    ) -> None:
        """Adds log P(token k | prompt + continuation[:k]) for k >= 1 to each continuation's score: its
        tokens but the last decoded after the prompt, then removed from the sequence."""
        entries: list[Entry] = [
            (seq, len(prompts[seq]) + offset, token, True)
            for seq, continuation in longer
            for offset, token in enumerate(continuation[:-1])
        ]
        rows = iter(decode_entries(self._llama_cpp, self._ctx, self._batch, entries, self._n_vocab))
        for seq, continuation in longer:
            for token in continuation[1:]:
                scores[seq][choice] += log_softmax_at(next(rows), [token])[0]
        for seq, _ in longer:
            self._llama_cpp.llama_memory_seq_rm(self._memory, seq, len(prompts[seq]), -1)
