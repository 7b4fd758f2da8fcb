"""The model-family protocol: what differs between decoder-only, encoder-decoder and multimodal
models when building inputs, generating and counting tokens. Everything else in a job is shared,
so every family reports the same metric columns with the same definitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

    from quantbench.data.base import Sample
    from quantbench.measure.timing import FirstTokenClock


@dataclass
class PreparedBatch:
    """Model inputs already on the device, built outside every timed region."""

    inputs: dict[str, Any]
    batch_size: int
    n_input_tokens: int  # real (non-padding) input tokens over the batch; image tokens included
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GeneratedBatch:
    new_tokens: torch.Tensor  # [batch, new tokens]: generated tokens only, no prompt
    n_generated_tokens: int  # over the batch; equals batch * max_new_tokens with min == max


@runtime_checkable
class ModelFamily(Protocol):
    name: str
    description: str
    model_types: Sequence[str]  # transformers model_type values this family handles

    def from_pretrained(self, source: str, **kwargs: Any) -> Any:
        """Load weights with this family's Auto class (kwargs: dtype, quantization_config, ...)."""

    def load_processor(self, source: str, **kwargs: Any) -> Any:
        """The tokenizer (or processor) that goes with the model."""

    def build_random_init(self, architecture: dict[str, Any], directory: Path, seed: int) -> None:
        """Write a random-init model of this architecture and a locally trained tokenizer."""

    def prepare_batch(
        self,
        samples: Sequence[Sample],
        processor: Any,
        *,
        device: str,
        max_input_tokens: int,
        chat_template: bool,
    ) -> PreparedBatch:
        """Tokenize (pad, truncate, move to device). Never called inside a timed region."""

    def generate(
        self, model: Any, batch: PreparedBatch, *, max_new_tokens: int, clock: FirstTokenClock | None
    ) -> GeneratedBatch:
        """Greedy generation of exactly max_new_tokens per sample; `clock` marks the first token."""

    def decode(self, processor: Any, generated: GeneratedBatch) -> list[str]:
        """The generated text of each sample."""
