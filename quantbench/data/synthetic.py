"""dataset=synthetic: requests of controlled lengths, their text taken from real text.

The input and output token counts are drawn from named distributions (quantbench.data.lengths),
seeded; each request gets a passage of the source text (WikiText-2 through the wikitext2 plugin, or
the built-in prompts), long enough to hold its input. Cutting the passage to the exact count needs
the model's tokenizer and chat template, so that happens where they are loaded
(quantbench.loadgen.synthetic); a sample here carries the counts in `meta`:

    input_tokens   the request's whole input as the server tokenizes it (template, system prompt
                   and special tokens included)
    output_tokens  the tokens it asks for (its max_tokens, with the end of sequence held back)
    prefix_group   with dataset.prefix.groups = K: which of the K shared system prompts it starts
                   with (each group given to as many prompts as the others, to one, in a seeded
                   order; meta prefix_text is that prompt's passage, prefix_tokens its length)
    conversation, turn   with dataset.conversation.turns = T: T consecutive samples are the turns of
                   one conversation (turn 0 first)

Outside scenario=serve (the offline batch) the passages are the prompts, cut by bench.max_input_tokens
like any dataset's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quantbench.data.base import Sample
from quantbench.data.lengths import length_distribution
from quantbench.errors import JobSkipped, unknown_choice

if TYPE_CHECKING:
    import numpy as np
    from omegaconf import DictConfig

SOURCES = ("wikitext2", "builtin")  # the dataset plugins whose text a synthetic workload is cut from
# Characters of source text per requested token, a bound no tokenizer reaches on real text (English
# runs near 4 characters a token; a byte-level tokenizer with a tiny vocabulary near 1.5), plus a
# margin, so that one passage always holds the tokens asked for.
CHARS_PER_TOKEN = 8
PASSAGE_MARGIN_CHARS = 256
SENTENCE_SEARCH_CHARS = 400  # a passage starts after the next full stop this near, else at the next word
_SEED_SALT = 0x5EED  # keeps these draws apart from other users of the same seed


def source_text(config: DictConfig) -> str:
    """The source's whole text, read by its own dataset plugin (no reader of its own here)."""
    from omegaconf import OmegaConf

    from quantbench.config import registry

    source = str(config.source)
    if source not in SOURCES:
        raise JobSkipped(f"dataset.source: {unknown_choice('synthetic text source', source, SOURCES)}")
    node = OmegaConf.create(
        {
            "name": source,
            "loader": source,
            "path": config.get("path"),
            "hub_id": "wikitext",  # read only when path is null
            "hub_config": "wikitext-2-raw-v1",
            "split": "test",
            "limit": None,
        }
    )
    samples = registry.datasets().get(source).load(node)
    # WikiText's articles joined give its text exactly; the built-in prompts one a line.
    text = ("" if source == "wikitext2" else "\n").join(sample.text for sample in samples)
    if not text.strip():
        raise JobSkipped(f"dataset.source={source} gave no text")
    return text


def passage(corpus: str, start: int, tokens: int) -> str:
    """Text from `start` (moved to the next sentence, or word), long enough for `tokens` tokens; the corpus
    wraps around, so a long passage of a short source repeats it."""
    chars = tokens * CHARS_PER_TOKEN + PASSAGE_MARGIN_CHARS
    start %= len(corpus)
    sentence = corpus.find(". ", start, start + SENTENCE_SEARCH_CHARS)
    space = corpus.find(" ", start)
    begin = sentence + 2 if sentence >= 0 else 0 if space < 0 else space + 1
    text = corpus[begin : begin + chars]
    while len(text) < chars:
        text += "\n" + corpus[: chars - len(text)]
    return text


def passages(corpus: str, rng: np.random.Generator, lengths: list[int]) -> list[str]:
    """One passage per length, each from a seeded random place in the corpus."""
    starts = rng.integers(0, len(corpus), len(lengths))
    return [passage(corpus, int(start), int(length)) for start, length in zip(starts, lengths)]


def _at_least(value: Any, key: str, low: int) -> int:
    if value is None or int(value) < low:
        raise JobSkipped(f"{key} must be at least {low}, got {value}")
    return int(value)


def workload_shape(config: DictConfig) -> dict[str, Any]:
    """The settings that shape the workload, checked: JobSkipped naming the key of a bad one."""
    prefix, conversation = config.prefix, config.conversation
    prefix_groups = _at_least(prefix.groups, "dataset.prefix.groups", 0)
    prefix_tokens = _at_least(prefix.tokens, "dataset.prefix.tokens", 0)
    if bool(prefix_groups) != bool(prefix_tokens):
        raise JobSkipped(
            f"dataset.prefix.groups={prefix_groups} and dataset.prefix.tokens={prefix_tokens}: set both "
            "(K shared system prompts of L tokens) or neither"
        )
    prompts = _at_least(config.n_prompts, "dataset.n_prompts", 1)
    if config.get("limit") is not None:
        prompts = min(prompts, _at_least(config.limit, "dataset.limit", 1))
    return {
        "prompts": prompts,
        "turns": _at_least(conversation.turns, "dataset.conversation.turns", 1),
        "prefix_groups": prefix_groups,
        "prefix_tokens": prefix_tokens,
        "input": length_distribution(config.input_tokens, "dataset.input_tokens"),
        "output": length_distribution(config.output_tokens, "dataset.output_tokens"),
    }


class SyntheticText:
    name = "synthetic"
    description = "requests of drawn input/output token counts, cut from WikiText-2 or the built-in prompts"

    def load(self, config: DictConfig) -> list[Sample]:
        import numpy as np

        shape = workload_shape(config)
        corpus = source_text(config)
        rng = np.random.default_rng([int(config.seed), _SEED_SALT])
        requests = shape["prompts"] * shape["turns"]
        inputs = shape["input"].draw(rng, requests)
        outputs = shape["output"].draw(rng, requests)
        groups = shape["prefix_groups"]
        prefixes = passages(corpus, rng, [shape["prefix_tokens"]] * groups)
        # Each group as often as the others (to one), in a seeded order.
        group_of = rng.permutation(np.arange(shape["prompts"]) % groups) if groups else None
        texts = passages(corpus, rng, [int(length) for length in inputs])
        samples = []
        for index in range(requests):
            conversation, turn = divmod(index, shape["turns"])
            group = None if group_of is None else int(group_of[conversation])
            samples.append(
                Sample(
                    id=f"synthetic-{conversation}" + (f"-turn{turn}" if shape["turns"] > 1 else ""),
                    text=texts[index],
                    meta={
                        "input_tokens": int(inputs[index]),
                        "output_tokens": int(outputs[index]),
                        "prefix_group": group,
                        "prefix_tokens": shape["prefix_tokens"] if groups else 0,
                        "prefix_text": None if group is None else prefixes[group],
                        "conversation": conversation if shape["turns"] > 1 else None,
                        "turn": turn if shape["turns"] > 1 else None,
                    },
                )
            )
        return samples
