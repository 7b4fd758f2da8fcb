"""Log-likelihoods of continuations after prompts through llama.cpp's batch API, with logits only
where they are read.

One `llama_decode` evaluates a question's prompt and asks for logits only at its last token: that row
scores the first token of every continuation. A continuation of several tokens is then decoded after
the prompt in the same sequence (logits at each of its tokens but the last) and removed again
(`llama_memory_seq_rm`) before the next: the prompt is evaluated once and every continuation sees
exactly its prompt + itself. Only the rows read are turned into log-probabilities (float64).

The context holds one sequence, and questions are decoded one after another: several sequences in
one `llama_decode` (kv_unified on or off) moved SmolLM2's gguf-q4_k_m log-likelihoods on real
PubMedQA prompts by up to 0.5 nats against the same prompt decoded alone, with llama-cpp-python
0.3.36's llama.cpp (docs/results/pubmedqa_scoring.md); one sequence reproduces them within 2e-5.
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
    """A one-sequence llama.cpp context on an opened model for questions of up to `tokens_per_seq`
    tokens (prompt + continuation minus its last token). `base_params`: the context parameters to
    start from (the job's `Llama.context_params`: its threads, KV cache type, flash attention)."""

    def __init__(self, llama_cpp: Any, model: Any, base_params: Any, *, tokens_per_seq: int):
        params = type(base_params).from_buffer_copy(base_params)
        params.n_seq_max = 1
        params.n_ctx = tokens_per_seq
        # A prompt is one decode call, as the per-question path's (`Llama.eval`) is.
        params.n_batch = params.n_ubatch = tokens_per_seq
        self._llama_cpp = llama_cpp
        self._tokens_per_seq = tokens_per_seq
        self._ctx = llama_cpp.llama_init_from_model(model, params)
        if not self._ctx:
            raise RuntimeError(
                f"llama.cpp could not make a scoring context of {tokens_per_seq} tokens (its log says why)"
            )
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self._batch = llama_cpp.llama_batch_init(tokens_per_seq, 0, 1)

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
        return [self._score_one(list(prompt), continuations) for prompt, continuations in questions]

    def _score_one(self, prompt: list[int], continuations: Sequence[Sequence[int]]) -> list[float]:
        longest = len(prompt) + max(map(len, continuations)) - 1
        if longest > self._tokens_per_seq:
            raise ValueError(
                f"a question of {longest} tokens does not fit the scoring context's {self._tokens_per_seq}"
            )
        llama_cpp = self._llama_cpp
        llama_cpp.llama_memory_clear(self._memory, True)
        entries: list[Entry] = [
            (0, position, token, position == len(prompt) - 1) for position, token in enumerate(prompt)
        ]
        (row,) = decode_entries(llama_cpp, self._ctx, self._batch, entries, self._n_vocab)
        scores = log_softmax_at(row, [continuation[0] for continuation in continuations])
        for choice, continuation in enumerate(continuations):
            if len(continuation) == 1:
                continue
            entries = [(0, len(prompt) + offset, token, True) for offset, token in enumerate(continuation[:-1])]
            rows = decode_entries(llama_cpp, self._ctx, self._batch, entries, self._n_vocab)
            scores[choice] += sum(log_softmax_at(row, [token])[0] for row, token in zip(rows, continuation[1:]))
            llama_cpp.llama_memory_seq_rm(self._memory, 0, len(prompt), -1)
        return scores
