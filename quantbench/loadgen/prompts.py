"""The prompts of a serving job: the dataset's samples, as each request sends them.

A prompt keeps at most `bench.max_input_tokens` tokens (its end, like the offline batch's left
truncation), goes to /v1/chat/completions when the dataset asks for the chat template and the
tokenizer has one (the server applies it), else to /v1/completions as plain text. Its input tokens
are counted here with the model's tokenizer, the way the server will see them, for servers that
report no usage.

Within a level no prompt repeats while the dataset has unused ones (a server's prefix cache would
otherwise shorten TTFT); the order is a seeded permutation per level, and warm-up requests take
prompts from the other end of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from quantbench.data.base import Sample


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    chat: bool  # sent as a chat message (the server applies the chat template)
    input_tokens: int  # as the server will tokenize it (template and special tokens included)
    # Tokens to generate for this request; None: the job's bench.max_new_tokens (a synthetic
    # workload or a trace gives each request its own).
    max_tokens: int | None = None
    # A synthetic workload's or a trace's (quantbench.loadgen.synthetic; rendered by
    # quantbench.loadgen.rendering): the shared system prompt in front of the text and its group;
    # the conversation and turn; on a conversation's first turn its later turns, in order; on a
    # later turn as it is sent, the (role, content) messages before it, the replies as received.
    system: str | None = None
    prefix_group: int | None = None
    conversation: str | None = None
    turn: int | None = None
    turns: tuple[Prompt, ...] = ()
    history: tuple[tuple[str, str], ...] = ()


def uses_chat(tokenizer: Any, chat_template: bool) -> bool:
    return bool(chat_template and getattr(tokenizer, "chat_template", None))


def build_prompts(
    samples: Sequence[Sample], tokenizer: Any, max_input_tokens: int, chat_template: bool
) -> list[Prompt]:
    chat = uses_chat(tokenizer, chat_template)
    prompts = []
    for sample in samples:
        ids = tokenizer(sample.text, add_special_tokens=False)["input_ids"]
        text = sample.text if len(ids) <= max_input_tokens else tokenizer.decode(ids[-max_input_tokens:])
        prompts.append(
            Prompt(id=sample.id, text=text, chat=chat, input_tokens=count_input_tokens(tokenizer, text, chat))
        )
    return prompts


def count_input_tokens(tokenizer: Any, text: str, chat: bool) -> int:
    from quantbench.loadgen.rendering import count_prompt_tokens

    return count_prompt_tokens(tokenizer, Prompt(id="", text=text, chat=chat, input_tokens=0))


def count_output_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0


class LevelPrompts:
    """The prompts of one level: `measured()` in a seeded order, `warmup(n)` from the other end.
    A client process of several (serve.client_processes) takes every `every`-th place of the
    order from place `first`, so the processes together send the order as one process would."""

    def __init__(self, prompts: Sequence[Prompt], seed: int, level: int, first: int = 0, every: int = 1):
        import numpy as np

        if not prompts:
            raise ValueError("a serving level needs at least one prompt")
        self.prompts = list(prompts)
        self.order = [int(i) for i in np.random.default_rng([seed, level]).permutation(len(self.prompts))]
        self.first, self.every = first, every
        self.handed_out = 0

    def measured(self) -> Iterator[Prompt]:
        """Endless; the dataset cycles once every prompt was sent (see `repeated`)."""
        while True:
            position = self.order[(self.first + self.handed_out * self.every) % len(self.order)]
            self.handed_out += 1
            yield self.prompts[position]

    def warmup(self, count: int) -> list[Prompt]:
        return [self.prompts[self.order[-1 - i % len(self.order)]] for i in range(count)]

    @property
    def repeated(self) -> bool:
        """Whether this level sent some prompt twice (more requests than the dataset has samples)."""
        return self.handed_out > 0 and self.first + (self.handed_out - 1) * self.every >= len(self.prompts)
