"""Quality from llama.cpp's logits: the TokenScorer interface on a GGUF file.

Perplexity, KL divergence and PubMedQA (log-likelihood) then run unchanged on exactly the windows
and tokens the transformers precisions use, against the same cached reference. The tokens come
from the model's own (transformers) tokenizer and are fed to llama.cpp as ids, so every engine
scores the same ids. Each text is also tokenized by the tokenizer embedded in the GGUF file, to
check that those ids mean the same text to the GGUF file: where the two cut a text differently,
llama.cpp must read the model's ids back as the very text its own tokens spell, else the file was
made from another tokenizer and the job fails. A cut that differs on the same text is legitimate
and counted: llama.cpp's pre-tokenizer and transformers' part ways on rare characters (SmolLM2
splits " " + NBSP as two tokens in transformers, 'ĠÂ' + 'ł' in llama.cpp: docs/gguf.md).
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, Callable, Sequence

from quantbench.errors import QuantbenchError
from quantbench.quality.scoring import QualityUnavailable

log = logging.getLogger("quantbench")


class TokenizerMismatch(QuantbenchError):
    """The GGUF file's embedded tokenizer reads the model's tokens as other text: it is another tokenizer."""


# A prefix of this many characters per wanted token usually holds them all (English text averages
# about 4); a shorter one is doubled until it does.
CHARS_PER_TOKEN_BOUND = 8
CUT_MARGIN_TOKENS = 64


class CheckedTokenizer:
    """The model's tokenizer, checked against llama.cpp's on every text it encodes without special tokens."""

    def __init__(self, tokenizer: Any, llm: Any, max_tokens: int | None = None):
        self._tokenizer = tokenizer
        self._llm = llm
        # Only the tokens that are scored are checked (quality.max_tokens of a long text).
        self._max_tokens = max_tokens
        # Texts the two tokenizers cut differently into the same text: recorded with the job.
        self.texts_cut_differently = 0

    def __call__(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        encoded = self._tokenizer(text, *args, **kwargs)
        if isinstance(text, str) and text and kwargs.get("add_special_tokens") is False:
            # special=True: a transformers tokenizer reads special tokens written in the text (WikiText's
            # literal "<unk>") as those tokens even without add_special_tokens; llama.cpp does so only with it.
            got = self._engine_tokens(text)
            expected = list(encoded["input_ids"])[: self._max_tokens]
            if expected != got[: self._max_tokens]:
                check_same_text(expected, got, self._llm.detokenize, whole=self._max_tokens is None)
                if self.texts_cut_differently == 0:
                    log.warning(
                        "the GGUF file's tokenizer cuts some evaluation texts differently from the model's "
                        "tokenizer into the same text; llama.cpp is fed the model's tokens (counted as "
                        "gguf_texts_cut_differently)"
                    )
                self.texts_cut_differently += 1
        return encoded

    def _engine_tokens(self, text: str) -> list[int]:
        """llama.cpp's tokens of the text, at least the first max_tokens of them. llama.cpp's
        SentencePiece tokenizer takes minutes for all of WikiText-2, so only a prefix of the text is
        tokenized: long enough for CUT_MARGIN_TOKENS past max_tokens, whose last tokens (a word cut
        in two at the prefix's end) are never compared."""
        if self._max_tokens is None:
            return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        n_chars = CHARS_PER_TOKEN_BOUND * (self._max_tokens + CUT_MARGIN_TOKENS)
        while True:
            got = self._llm.tokenize(text[:n_chars].encode("utf-8"), add_bos=False, special=True)
            if n_chars >= len(text) or len(got) >= self._max_tokens + CUT_MARGIN_TOKENS:
                return got
            n_chars *= 2

    def __getattr__(self, name: str) -> Any:
        if name == "tokenizer":  # not a processor wrapping a tokenizer: text_tokenizer() gets this object
            raise AttributeError(name)
        return getattr(self._tokenizer, name)


def check_same_text(expected: Sequence[int], got: Sequence[int], detokenize: Callable[..., bytes], whole: bool) -> None:
    """TokenizerMismatch unless the GGUF file reads the model's tokens `expected` as the text its own
    tokens `got` spell (all of it when `whole`; else a prefix of it, `got` running past `expected`)."""
    theirs = detokenize(list(got), special=True)
    ours = detokenize(list(expected), special=True)
    if ours == theirs or (not whole and theirs.startswith(ours)):
        return
    at = next((index for index, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    raise TokenizerMismatch(
        f"the GGUF file's tokenizer reads the model's tokens as other text than the evaluation text, from token {at} "
        f"(model: {list(expected[at : at + 5])}, GGUF: {list(got[at : at + 5])}; "
        f"{len(expected)} vs {len(got)} tokens); "
        "the file was not made from this model's tokenizer: "
        "convert the model again (quantbench cache clear --kind gguf)"
    )


class _GenerationUnsupported:
    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise QualityUnavailable(
            "PubMedQA's generate mode is not implemented for llama.cpp; use quality.pubmedqa.mode=loglikelihood"
        )


class LlamaCppScorer:
    """Log-probabilities of the next token at every position, from a llama.cpp context with logits_all."""

    is_causal = True
    device = "cpu"  # the log-probs are returned on the CPU, wherever llama.cpp ran

    def __init__(self, llm: Any, family: Any, tokenizer: Any, n_ctx_train: int, max_tokens: int | None = None):
        self.llm = llm
        self.family = family
        self.processor = CheckedTokenizer(tokenizer, llm, max_tokens)
        # What the quality code reads of a model: its context limit (as the transformers model's),
        # the file's trained context (`Llama` does not expose it).
        self.model = _GenerationUnsupported()
        self.model.config = SimpleNamespace(max_position_embeddings=int(n_ctx_train), is_encoder_decoder=False)

    def log_probs(self, token_ids: Sequence[int], last: int | None = None) -> Any:
        import torch

        tokens = list(token_ids)
        if len(tokens) > self.llm.n_ctx():
            raise QuantbenchError(f"{len(tokens)} tokens do not fit the llama.cpp context of {self.llm.n_ctx()} tokens")
        self.llm.reset()
        self.llm.eval(tokens)
        logits = self.llm.scores[: len(tokens)]
        if last is not None:
            logits = logits[-last:]
        return torch.log_softmax(torch.from_numpy(logits.copy()), dim=-1)

    def choice_scoring(self, n_seq: int, tokens_per_seq: int) -> Any:
        """Answer continuations scored through llama.cpp's batch API (quantbench/gguf/scoring.py) with
        logits only where a log-probability is read, in a context of its own beside this `Llama`'s
        (its threads and KV cache type). One question per decode call whatever `n_seq` (that module
        says why)."""
        from quantbench.gguf.binding import import_binding
        from quantbench.gguf.scoring import ChoiceScoringContext

        return ChoiceScoringContext(
            import_binding(), self.llm.model, self.llm.context_params, tokens_per_seq=tokens_per_seq
        )


def scoring_context_tokens(quality: Any, n_ctx_train: int) -> int:
    """The llama.cpp context the quality passes need: their longest sequence, within the model's limit."""
    needed = int(quality.context_tokens)
    if quality.get("pubmedqa") is not None:
        needed = max(needed, int(quality.pubmedqa.max_prompt_tokens) + 8)  # + the longest choice
    return min(needed, n_ctx_train)
