"""Small tokenizers trained locally, for random-init test models.

Both can encode any text (byte-level BPE; SentencePiece with byte fallback), so tiny models accept
every dataset; the corpus is quantbench's own built-in prompts, so nothing is downloaded. The tiny
decoders use the SentencePiece one: llama.cpp's converter recognises a SentencePiece model
(`tokenizer.model`), while it refuses a byte-level BPE tokenizer whose pre-tokenizer it does not know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from quantbench.data.builtin import builtin_corpus

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


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


SENTENCEPIECE_FILE = "tokenizer.model"  # the name llama.cpp's converter and transformers look for


def train_sentencepiece_tokenizer(directory: Path, texts: Iterable[str] | None = None, vocab_size: int = 512):
    """A Llama tokenizer on a SentencePiece BPE model trained on `texts`, its model file in `directory`.

    No normalization and no dummy-prefix space, so transformers, sentencepiece and llama.cpp all cut
    any text into the same tokens (a dummy prefix is where their handling of leading spaces differs).
    """
    import io

    import sentencepiece
    from transformers import LlamaTokenizer

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts) if texts is not None else builtin_corpus()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,  # any character outside the corpus is its UTF-8 bytes, never <unk>
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece=PAD,
        bos_piece=BOS,
        eos_piece=EOS,
        unk_piece=UNK,
        num_threads=1,  # for the same model on every machine
        minloglevel=2,
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SENTENCEPIECE_FILE).write_bytes(model.getvalue())
    return LlamaTokenizer.from_pretrained(directory, pad_token=PAD, add_prefix_space=False, legacy=False)
