"""Device-synchronized clocks.

Every timed region is closed by `torch.cuda.synchronize()` on CUDA, because kernel launches
return before the work is done; `time.perf_counter` is the host clock on both CPU and GPU.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import StoppingCriteria


class DeviceClock:
    def __init__(self, device_type: str):
        self._cuda = device_type == "cuda"

    def synchronize(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def now(self) -> float:
        """Seconds, after all queued device work has finished."""
        self.synchronize()
        return time.perf_counter()


class FirstTokenClock(StoppingCriteria):
    """A stopping criterion that never stops generation; it records when the first new token exists.

    transformers calls stopping criteria right after each new token is appended, so the first
    call marks the end of the prefill (for encoder-decoder models: the encoder pass plus the first
    decoder step). Only that first call synchronizes the device, so decoding is not slowed.
    """

    def __init__(self, clock: DeviceClock):
        self._clock = clock
        self.first_token_at: float | None = None

    def reset(self) -> None:
        self.first_token_at = None

    def mark(self) -> None:
        """The first new tokens exist now; only the first mark counts (an engine other than
        transformers calls this itself, e.g. llama.cpp once every prompt's first token is picked)."""
        if self.first_token_at is None:
            self.first_token_at = self._clock.now()

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        self.mark()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
