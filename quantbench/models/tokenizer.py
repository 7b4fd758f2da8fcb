"""A small byte-level BPE tokenizer trained locally, for random-init test models.

Byte-level BPE can encode any text, so tiny models accept every dataset; the corpus is
quantbench's own built-in prompts, so nothing is downloaded.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def builtin_corpus() -> list[str]:
    text = resources.files("quantbench.data").joinpath("builtin_prompts.json").read_text()
    return list(json.loads(text)["prompts"])


def train_tokenizer(
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    extra_special_tokens: Sequence[str] = (),
):
    """A `PreTrainedTokenizerFast` with pad/bos/eos/unk tokens, trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, *extra_special_tokens]
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts) if texts is not None else builtin_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        additional_special_tokens=list(extra_special_tokens) or None,
    )
