"""How a prompt becomes what a request sends, and how many tokens the server will make of it.

One owner for both, so a prompt cut to an exact token count (quantbench.loadgen.synthetic) is
counted exactly as it is sent (quantbench.loadgen.client). A chat prompt is the message list
[system] + history + user, rendered by the tokenizer's chat template with the generation prompt,
as the server renders it. A plain-text prompt (/v1/completions) is the system prompt, then every
earlier turn's text and reply, then the new text, joined by a blank line where a new part starts,
tokenized with the tokenizer's special tokens (the BOS a server adds).
"""

from __future__ import annotations

from typing import Any, Protocol


class Prompt(Protocol):
    """What rendering reads of a prompt (quantbench.loadgen.prompts.Prompt): a protocol here, so that
    the prompts module, which counts its prompts with this one, is not imported back."""

    text: str
    chat: bool
    system: str | None
    history: tuple[tuple[str, str], ...]


PLAIN_SEPARATOR = "\n\n"  # between the system prompt and the text, and before a later turn's text


def chat_messages(prompt: Prompt) -> list[dict[str, str]]:
    system = [{"role": "system", "content": prompt.system}] if prompt.system else []
    history = [{"role": role, "content": content} for role, content in prompt.history]
    return [*system, *history, {"role": "user", "content": prompt.text}]


def plain_text(prompt: Prompt) -> str:
    texts = [
        PLAIN_SEPARATOR + content if role == "user" and index > 0 else content
        for index, (role, content) in enumerate(prompt.history)
    ]
    texts.append(PLAIN_SEPARATOR + prompt.text if prompt.history else prompt.text)
    return (prompt.system + PLAIN_SEPARATOR if prompt.system else "") + "".join(texts)


def count_prompt_tokens(tokenizer: Any, prompt: Prompt) -> int:
    """The prompt's input tokens as the server tokenizes it (template and special tokens included)."""
    if prompt.chat:
        rendered = tokenizer.apply_chat_template(chat_messages(prompt), tokenize=False, add_generation_prompt=True)
        return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    return len(tokenizer(plain_text(prompt))["input_ids"])
