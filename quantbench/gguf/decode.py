"""Greedy decoding of several prompts together through llama.cpp's batch API.

llama-cpp-python's `Llama` decodes one sequence; llama.cpp's C API decodes several in one
`llama_decode` when each token of the batch names its sequence. A context made for `n_seq`
sequences holds each prompt as its own sequence (its own positions, its own part of the KV cache,
so no padding): one call prefills every prompt (logits only at each prompt's last token), then each
step feeds every sequence its last token in one call. Batch 1 takes the same path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence


class GgufModel:
    """A GGUF file's weights opened by llama.cpp (`llama_model_load_from_file`), with no context of its
    own: each `BatchDecoder` makes the one it needs. (`Llama` would open a context and KV cache
    beside the model, memory the timed decoder never uses.)"""

    def __init__(self, llama_cpp: Any, path: Path, *, gpu: bool):
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = -1 if gpu else 0
        self._llama_cpp = llama_cpp
        self.pointer = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.pointer:
            raise RuntimeError(f"llama.cpp could not load the GGUF file {path}")

    def close(self) -> None:
        if self.pointer:
            self._llama_cpp.llama_model_free(self.pointer)
            self.pointer = None


@dataclass(frozen=True)
class DecodeShape:
    """What a context is sized for: n_seq prompts of at most prompt_tokens, each grown by new_tokens."""

    n_seq: int
    prompt_tokens: int
    new_tokens: int

    @property
    def tokens_per_seq(self) -> int:
        return self.prompt_tokens + self.new_tokens

    @property
    def prefill_tokens(self) -> int:
        return self.n_seq * self.prompt_tokens


class BatchDecoder:
    """A llama.cpp context on an opened model (`GgufModel.pointer`, or `Llama.model`) for `shape.n_seq`
    sequences, with greedy decoding. `cache_type`: the ggml type number of its K and V cache, with
    flash attention on (a quantized V cache needs it); None: llama.cpp's defaults (f16, flash
    attention where the device has it)."""

    def __init__(self, llama_cpp: Any, model: Any, shape: DecodeShape, *, threads: int, cache_type: int | None = None):
        params = llama_cpp.llama_context_default_params()
        if cache_type is not None:
            params.type_k = params.type_v = cache_type
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        # Sequences do not share the cache (kv_unified is off): each gets n_ctx / n_seq_max positions.
        params.n_ctx = shape.n_seq * shape.tokens_per_seq
        params.n_seq_max = shape.n_seq
        # The whole prefill is one decode call, as transformers' prefill is one forward pass.
        params.n_batch = max(shape.prefill_tokens, shape.n_seq)
        params.n_ubatch = params.n_batch
        params.n_threads = threads
        params.n_threads_batch = threads
        self._llama_cpp = llama_cpp
        self._shape = shape
        self._ctx = llama_cpp.llama_init_from_model(model, params)
        if not self._ctx:
            raise RuntimeError(
                f"llama.cpp could not make a context for {shape.n_seq} sequences of {shape.tokens_per_seq} tokens"
                + ("" if cache_type is None else f" with a KV cache of ggml type {cache_type} (its log says why)")
            )
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)

    def close(self) -> None:
        if self._ctx:
            self._llama_cpp.llama_batch_free(self._batch)
            self._llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def generate(
        self, prompts: Sequence[Sequence[int]], new_tokens: int, on_first_tokens: Callable[[], None] | None = None
    ) -> list[list[int]]:
        """Exactly `new_tokens` greedy tokens per prompt (end of sequence never stops a sequence)."""
        if (
            len(prompts) > self._shape.n_seq
            or max(map(len, prompts)) > self._shape.prompt_tokens
            or new_tokens > self._shape.new_tokens
        ):
            raise ValueError(
                f"{len(prompts)} prompts of up to {max(map(len, prompts))} tokens + {new_tokens} new "
                f"do not fit the context's {self._shape}"
            )
        llama_cpp = self._llama_cpp
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._ctx), True)
        entries = [
            (seq, position, token, position == len(prompt) - 1)
            for seq, prompt in enumerate(prompts)
            for position, token in enumerate(prompt)
        ]
        generated = [[token] for token in self._decode(entries)]
        if on_first_tokens is not None:
            on_first_tokens()
        for step in range(1, new_tokens):
            entries = [
                (seq, len(prompt) + step - 1, tokens[-1], True)
                for seq, (prompt, tokens) in enumerate(zip(prompts, generated))
            ]
            for tokens, token in zip(generated, self._decode(entries)):
                tokens.append(token)
        return generated

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> list[int]:
        """One llama_decode of (sequence, position, token, wants logits) entries; the argmax at each entry
        that wants logits, in order."""
        return [
            int(logits.argmax())
            for logits in decode_entries(self._llama_cpp, self._ctx, self._batch, entries, self._n_vocab)
        ]


Entry = tuple[int, int, int, bool]  # (sequence, position, token, wants logits)


def decode_entries(llama_cpp: Any, ctx: Any, batch: Any, entries: Sequence[Entry], n_vocab: int) -> list[Any]:
    """One llama_decode of the entries in `batch` (made by llama_batch_init for at least len(entries)
    tokens); the logits of each entry that wants them, in order, as float32 arrays of n_vocab that
    view llama.cpp's buffer (valid until the context's next decode)."""
    import numpy as np

    outputs = []
    for index, (seq, position, token, logits) in enumerate(entries):
        batch.token[index] = token
        batch.pos[index] = position
        batch.n_seq_id[index] = 1
        batch.seq_id[index][0] = seq
        batch.logits[index] = logits
        if logits:
            outputs.append(index)
    batch.n_tokens = len(entries)
    status = llama_cpp.llama_decode(ctx, batch)
    if status != 0:
        raise RuntimeError(
            f"llama_decode returned {status} for {len(entries)} tokens (1: no room in the KV cache; <0: an error)"
        )
    return [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,)) for index in outputs]
