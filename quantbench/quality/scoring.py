"""Next-token log-probabilities of a fixed token sequence: the one thing every quality metric needs.

A family can define `next_token_logits(model, processor, input_ids) -> logits`: `input_ids` is a
LongTensor [batch, length] on the model's device, the result is [batch, length, vocab] where
position t is the distribution of token t + 1. Decoder-only models need no hook (a plain forward
pass is exactly that); an encoder-decoder family teacher-forces its decoder on the sequence with a
fixed encoder input, a multimodal family puts the sequence after a fixed image. Whatever the
conditioning, it is the same for every precision of a model, so the distributions compare.
"""

from __future__ import annotations

from typing import Any, Sequence

from quantbench.errors import QuantbenchError


class QualityUnavailable(QuantbenchError):
    """A quality metric that does not apply to this model or family; the job's other numbers stand."""


def text_tokenizer(processor: Any) -> Any:
    """The tokenizer inside a multimodal processor, or the processor itself."""
    return getattr(processor, "tokenizer", processor)


def context_limit_tokens(model: Any) -> int | None:
    """The longest input the model's position embeddings allow, where its config says."""
    config = getattr(model, "config", None)
    for candidate in (config, getattr(config, "text_config", None)):
        limit = getattr(candidate, "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0:
            return limit
    return None


class TokenScorer:
    """Log-probabilities of the next token at every position of a sequence, on one loaded model."""

    def __init__(self, family: Any, model: Any, processor: Any, device: str):
        self.family = family
        self.model = model
        self.processor = processor
        self.device = device
        self._hook = getattr(family, "next_token_logits", None)
        if self._hook is None and getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise QualityUnavailable(
                f"family '{getattr(family, 'name', family)}' is encoder-decoder but defines no next_token_logits hook; "
                "add one to the family to get quality metrics"
            )

    @property
    def is_causal(self) -> bool:
        """Whether the sequence is the whole conditioning (decoder-only): needed for prompt scoring."""
        return not getattr(getattr(self.model, "config", None), "is_encoder_decoder", False)

    def log_probs(self, token_ids: Sequence[int], last: int | None = None) -> Any:
        """float32 log-softmax, [len(token_ids), vocab]; row t is the distribution of token t + 1.

        `last=n` keeps only the last n rows; a decoder then computes only those logits (the output
        layer of a small model is a fifth of its work per token).
        """
        import torch

        input_ids = torch.as_tensor([list(token_ids)], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            if self._hook is not None:
                logits = self._hook(self.model, self.processor, input_ids)
            elif last is not None:
                logits = self.model(input_ids=input_ids, use_cache=False, logits_to_keep=last).logits
            else:
                logits = self.model(input_ids=input_ids, use_cache=False).logits
            if last is not None:
                logits = logits[:, -last:]
            return torch.log_softmax(logits[0].float(), dim=-1)

    def choice_scoring(self, n_seq: int, tokens_per_seq: int) -> Any:
        """What scores answer continuations (quality/choice_scoring.py): up to `n_seq` questions per
        forward pass; one at a time through a family's next_token_logits hook (it takes no padding) or
        a subclass's own `log_probs` (quality/cache_scorer.py reads through a quantized cache)."""
        from quantbench.quality.choice_scoring import PerQuestionChoiceScoring, TransformersChoiceScoring

        if self._hook is not None or type(self).log_probs is not TokenScorer.log_probs:
            return PerQuestionChoiceScoring(self)
        return TransformersChoiceScoring(self.model, self.device)
