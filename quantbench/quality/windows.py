"""The evaluation tokens of perplexity and KL divergence: a text cut into scoring windows.

The text is tokenized once, without special tokens, and cut into windows of `context_tokens`
that start `stride` tokens apart. Each window scores only the tokens no earlier window scored,
so every token after the first is scored exactly once; with stride < context each scored token
sees at least context - stride tokens of context. A window's first token has no prediction, so
with stride == context (non-overlapping windows) the first token of each window is not scored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from quantbench.errors import QuantbenchError


@dataclass(frozen=True)
class TextWindow:
    begin: int  # first token of the window in the text
    end: int  # one past its last token
    first_scored: int  # offset in the window of the first scored token (>= 1)

    @property
    def n_scored(self) -> int:
        return self.end - self.begin - self.first_scored


@dataclass(frozen=True)
class TextWindows:
    token_ids: list[int]
    windows: list[TextWindow]
    context_tokens: int
    stride: int

    @property
    def n_scored(self) -> int:
        return sum(window.n_scored for window in self.windows)

    def window_ids(self, window: TextWindow) -> list[int]:
        return self.token_ids[window.begin : window.end]

    def digest(self) -> str:
        """Identifies the exact tokens and windows: the text, tokenizer and window settings at once."""
        hasher = hashlib.sha256()
        hasher.update(",".join(map(str, self.token_ids)).encode())
        for window in self.windows:
            hasher.update(f"|{window.begin}:{window.end}:{window.first_scored}".encode())
        return hasher.hexdigest()[:16]


def make_windows(n_tokens: int, context_tokens: int, stride: int, limit: int | None = None) -> list[TextWindow]:
    if context_tokens < 2:
        raise QuantbenchError(
            f"quality.context_tokens is {context_tokens}; expected at least 2 (one to condition on, one to score)"
        )
    if not 1 <= stride <= context_tokens:
        raise QuantbenchError(f"quality.stride is {stride}; expected 1 <= stride <= context_tokens ({context_tokens})")
    windows: list[TextWindow] = []
    scored_until = 0  # tokens before this index are already scored (or are the text's first token)
    for begin in range(0, max(n_tokens - 1, 0), stride):
        end = min(begin + context_tokens, n_tokens)
        first_scored = max(scored_until - begin, 1)
        if end - begin > first_scored:
            windows.append(TextWindow(begin, end, first_scored))
        scored_until = end
        if end == n_tokens or (limit is not None and len(windows) >= limit):
            break
    return windows


def tokenize_text(text: str, tokenizer: Any, max_tokens: int | None) -> list[int]:
    # verbose=False: a whole text is longer than the model's context, which is why it is windowed.
    token_ids = list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return token_ids[:max_tokens] if max_tokens is not None else token_ids


def text_windows(
    text: str, tokenizer: Any, *, context_tokens: int, stride: int, max_tokens: int | None, limit: int | None
) -> TextWindows:
    token_ids = tokenize_text(text, tokenizer, max_tokens)
    windows = make_windows(len(token_ids), context_tokens, stride, limit)
    if not windows:
        raise QuantbenchError(f"the evaluation text has {len(token_ids)} tokens; perplexity needs at least 2")
    return TextWindows(token_ids, windows, context_tokens, stride)


def scored_targets(windows: TextWindows, window: TextWindow) -> Sequence[int]:
    return windows.token_ids[window.begin + window.first_scored : window.end]
