"""Prompts of exact token counts, cut from passages of real text with the model's tokenizer.

The builder of dataset=synthetic and of trace replay (quantbench.loadgen.trace). A request's input
count is the whole input as the server tokenizes it (quantbench.loadgen.rendering: chat template,
system prompt and special tokens included), so the cut leaves room for the template's overhead and
is then adjusted: decoding a token slice and encoding it again can merge or split a token at the
cut, so the count is checked after every cut and the cut moved by the miss, first by tokens, then
by characters (fit_text). A cut that cannot land exactly (never seen on the tokenizers tested) keeps the
nearest count, which the prompt then carries, and the job counts such prompts
(`synthetic_inputs_off_target`).

Shared prefixes: each of the K groups' system prompts is cut to exactly `prefix_tokens` tokens of
its own; a request of the group sends it first (a chat's system message; plain text: in front of
the text), inside its input count. Conversations: the samples of one conversation become one
prompt whose `turns` are the later turns; each turn is cut as a request of its own, and as it is
sent it carries the history (quantbench.loadgen.conversation).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from quantbench.errors import JobSkipped

if TYPE_CHECKING:
    from quantbench.data.base import Sample
    from quantbench.loadgen.prompts import Prompt

log = logging.getLogger("quantbench")
TOKEN_STEPS = 8  # cuts moved by whole tokens before stepping by characters
WINDOW_STEPS = 256  # character steps of the window, each one count of the prompt
# Tokens a conversation's history adds per earlier turn beyond its texts: the assistant reply's
# template around it (e.g. "<|im_start|>assistant\n ... <|im_end|>\n"); a bound for sizing servers.
TURN_TEMPLATE_TOKENS = 8


@dataclass(frozen=True)
class RequestShape:
    """One request to cut: its counts and its text's passage (from a synthetic sample or a trace line)."""

    id: str
    passage: str
    input_tokens: int
    output_tokens: int
    prefix_group: int | None = None
    prefix_tokens: int = 0
    prefix_passage: str | None = None
    conversation: str | None = None
    turn: int | None = None


def shapes_of(samples: Sequence[Sample]) -> list[RequestShape]:
    """The requests dataset=synthetic's samples describe (quantbench.data.synthetic puts the counts in meta)."""
    shapes = []
    for sample in samples:
        meta = sample.meta
        conversation = meta.get("conversation")
        shapes.append(
            RequestShape(
                id=sample.id,
                passage=sample.text,
                input_tokens=int(meta["input_tokens"]),
                output_tokens=int(meta["output_tokens"]),
                prefix_group=meta.get("prefix_group"),
                prefix_tokens=int(meta.get("prefix_tokens") or 0),
                prefix_passage=meta.get("prefix_text"),
                conversation=None if conversation is None else str(conversation),
                turn=meta.get("turn"),
            )
        )
    return shapes


def is_synthetic(samples: Sequence[Sample]) -> bool:
    return bool(samples) and "input_tokens" in samples[0].meta and "output_tokens" in samples[0].meta


def fit_text(
    ids: list[int], decode: Callable[[list[int]], str], count: Callable[[str], int], target: int, overhead: int
) -> tuple[str, int]:
    """(text, its count): text of the passage `ids` encode whose count is `target`, or the nearest found.

    First a prefix of whole tokens, the cut moved by each miss. Where the cut cannot land (a character
    of several byte tokens, decoded whole, jumps over the target), a window of characters: its end
    grown while the count is short, its start moved on while it is over."""
    cut = max(1, min(len(ids), target - overhead))
    counts: dict[int, int] = {}
    for _ in range(TOKEN_STEPS):
        text = decode(ids[:cut])
        counts[cut] = count(text)
        if counts[cut] == target:
            return text, target
        cut = max(1, min(len(ids), cut + target - counts[cut]))
        if cut in counts:
            break
    short = [cut for cut, counted in counts.items() if counted < target]
    full = decode(ids)
    begin, end = 0, len(decode(ids[: max(short)])) if short else 1
    best = (math.inf, "", 0)
    for _ in range(WINDOW_STEPS):
        text = full[begin:end]
        counted = count(text)
        if counted == target:
            return text, target
        best = min(best, (abs(counted - target), text, counted), key=lambda entry: entry[0])
        if counted < target:
            end += 1
        else:
            begin += 1
        if end > len(full) or begin >= end:
            break
    return best[1], best[2]


class PromptCutter:
    """Cuts prompts for one tokenizer and template; keeps each prefix group's system prompt."""

    def __init__(self, tokenizer: Any, chat: bool):
        self.tokenizer = tokenizer
        self.chat = chat
        self.prefixes: dict[int, str] = {}
        self.off_target = 0  # prompts whose count missed (fit_text's nearest)

    def _ids(self, passage: str, needed: int, what: str) -> list[int]:
        ids = self.tokenizer(passage, add_special_tokens=False)["input_ids"]
        if len(ids) < needed:
            raise JobSkipped(f"{what}: the source text gives {len(ids)} tokens where {needed} are needed")
        return ids

    def prefix(self, shape: RequestShape) -> str | None:
        if shape.prefix_group is None or not shape.prefix_tokens:
            return None
        group = int(shape.prefix_group)
        if group not in self.prefixes:
            passage = shape.prefix_passage or shape.passage
            ids = self._ids(passage, shape.prefix_tokens, f"prefix group {group}")
            text, counted = fit_text(
                ids,
                self.tokenizer.decode,
                lambda text: len(self.tokenizer(text, add_special_tokens=False)["input_ids"]),
                shape.prefix_tokens,
                0,
            )
            if counted != shape.prefix_tokens:
                self.off_target += 1
            self.prefixes[group] = text
        return self.prefixes[group]

    def cut(self, shape: RequestShape, key: str) -> Prompt:
        """The prompt of `shape`, its input exactly shape.input_tokens; JobSkipped naming `key`
        when the count cannot hold the template and prefix plus a token of text."""
        from quantbench.loadgen.prompts import Prompt
        from quantbench.loadgen.rendering import count_prompt_tokens

        base = Prompt(
            id=shape.id,
            text="",
            chat=self.chat,
            input_tokens=0,
            max_tokens=shape.output_tokens,
            system=self.prefix(shape),
            prefix_group=shape.prefix_group,
            conversation=shape.conversation,
            turn=shape.turn,
        )
        overhead = count_prompt_tokens(self.tokenizer, base)
        if shape.input_tokens <= overhead:
            parts = "the chat template" if self.chat else "the special tokens"
            parts += f" and the {shape.prefix_tokens}-token prefix" if base.system else ""
            raise JobSkipped(
                f"{key}: a request of {shape.input_tokens} input tokens cannot hold {parts} ({overhead} tokens) "
                f"and a token of text; raise {key}.min above {overhead}"
            )
        ids = self._ids(shape.passage, shape.input_tokens - overhead, f"request {shape.id}")
        text, counted = fit_text(
            ids,
            self.tokenizer.decode,
            lambda text: count_prompt_tokens(self.tokenizer, replace(base, text=text)),
            shape.input_tokens,
            overhead,
        )
        if counted != shape.input_tokens:
            self.off_target += 1
        return replace(base, text=text, input_tokens=counted)


def fit_context(shapes: list[RequestShape], context_tokens: int | None, clip: bool, key: str) -> list[RequestShape]:
    """Each request within the model's context (input + output); `clip` (input_tokens.max null)
    shortens a longer input to fit, else JobSkipped names the request and `key`."""
    if context_tokens is None:
        return shapes
    fitted = []
    for shape in shapes:
        room = context_tokens - shape.output_tokens
        if shape.input_tokens > room:
            if not clip or room < 1:
                raise JobSkipped(
                    f"{key}: request {shape.id} needs {shape.input_tokens} input + {shape.output_tokens} output "
                    f"tokens, beyond the model's context of {context_tokens}; lower {key}.max or the output"
                )
            shape = replace(shape, input_tokens=room)
        fitted.append(shape)
    return fitted


def conversations(prompts: list[Prompt]) -> list[Prompt]:
    """Prompts of one conversation as one: the first turn, its later turns in `turns` (in order)."""
    grouped: dict[str, list[Prompt]] = {}
    order: list[Prompt | str] = []
    for prompt in prompts:
        if prompt.conversation is None:
            order.append(prompt)
            continue
        if prompt.conversation not in grouped:
            grouped[prompt.conversation] = []
            order.append(prompt.conversation)
        grouped[prompt.conversation].append(prompt)
    return [
        entry if not isinstance(entry, str) else replace(grouped[entry][0], turns=tuple(grouped[entry][1:]))
        for entry in order
    ]


def longest_request_tokens(prompts: Sequence[Prompt], max_new_tokens: int) -> int:
    """Input + output tokens of the job's longest request; a conversation's last turn carries every
    earlier turn's input and reply (a bound: its templates counted once per turn)."""
    longest = 0
    for prompt in prompts:
        total = 0
        for turn in (prompt, *prompt.turns):
            total += turn.input_tokens + (turn.max_tokens or max_new_tokens)
        longest = max(longest, total + TURN_TEMPLATE_TOKENS * len(prompt.turns))
    return longest


def all_prompts(prompts: Sequence[Prompt]) -> list[Prompt]:
    """Every prompt, later turns of conversations included."""
    return [turn for prompt in prompts for turn in (prompt, *prompt.turns)]


def cut_prompts(shapes: list[RequestShape], tokenizer: Any, chat: bool, key: str) -> tuple[list[Prompt], int]:
    """(the prompts, conversations grouped; how many missed their count)."""
    cutter = PromptCutter(tokenizer, chat)
    prompts = conversations([cutter.cut(shape, key) for shape in shapes])
    if cutter.off_target:
        log.warning("%d synthetic prompts could not be cut to their exact token count", cutter.off_target)
    return prompts, cutter.off_target
