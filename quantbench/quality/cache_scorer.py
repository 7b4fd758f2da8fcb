"""Next-token log-probabilities read through a transformers KV cache, so that its precision counts.

quantbench's TokenScorer scores a sequence in one forward pass without a cache: the keys and values
never leave the pass, so transformers' quantized cache (which quantizes what it stores, and hands a
pass its own new states at full precision) would change nothing there. `ChunkedCacheScorer` feeds
the sequence in chunks of `chunk_tokens` through one cache: every chunk attends to the earlier chunks
through the cache (for QuantizedCache: dequantized, the newest residual kept at full precision) and
to itself at full precision, the state a token generate() decodes sees. With chunks of the quantized
cache's residual length (128), each chunk is quantized into the cache as the next one arrives. Its
reference is the same chunking through the model's own cache (DynamicCache, the model's dtype), so
the cache is the only difference between the two.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from quantbench.quality.scoring import TokenScorer


class ChunkedCacheScorer(TokenScorer):
    """A decoder's log-probabilities through `make_cache()` (a fresh cache per sequence), `chunk_tokens`
    tokens per forward pass."""

    # Its scores are the cache's as much as the precision's: never stored as the precision's reference.
    own_reference = False

    def __init__(
        self, family: Any, model: Any, processor: Any, device: str, make_cache: Callable[[], Any], chunk_tokens: int
    ):
        super().__init__(family, model, processor, device)
        if self._hook is not None:
            from quantbench.quality.scoring import QualityUnavailable

            raise QualityUnavailable(
                f"family '{getattr(family, 'name', family)}' scores through its own next_token_logits hook; "
                "its KV cache's precision cannot be scored"
            )
        self.make_cache = make_cache
        self.chunk_tokens = int(chunk_tokens)

    def log_probs(self, token_ids: Sequence[int], last: int | None = None) -> Any:
        import torch

        tokens = list(token_ids)
        keep_from = 0 if last is None else len(tokens) - last
        cache = self.make_cache()
        parts = []
        with torch.inference_mode():
            for start in range(0, len(tokens), self.chunk_tokens):
                chunk = tokens[start : start + self.chunk_tokens]
                input_ids = torch.as_tensor([chunk], dtype=torch.long, device=self.device)
                wanted = start + len(chunk) - max(keep_from, start)  # this chunk's rows that are kept
                if wanted <= 0:
                    self.model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=1)
                    continue
                logits = self.model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=wanted).logits
                parts.append(torch.log_softmax(logits[0, -wanted:].float(), dim=-1))
        return torch.cat(parts)
