"""GGUF types: the precisions compose and name llama.cpp, a type llama.cpp cannot make is a skipped
row, the tiny decoder's tokenizer, and the tokenizer check on a stand-in (conversion, quantization
and quality through llama.cpp for real: tests/e2e/test_gguf_llama_cpp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantbench.config import registry
from quantbench.errors import JobSkipped
from quantbench.models.source import resolve_model

GGUF_PRECISIONS = ("gguf-f16", "gguf-q8_0", "gguf-q6_k", "gguf-q5_k_m", "gguf-q4_k_m", "gguf-q4_0")


@pytest.mark.parametrize("precision", GGUF_PRECISIONS)
def test_gguf_precisions_compose_and_name_llama_cpp(compose_config, precision):
    from quantbench.gguf.types import check_file_type

    cfg = compose_config([f"precision={precision}"])
    assert cfg.precision.backend == "gguf"
    assert cfg.precision.engine == "llama.cpp"
    assert check_file_type(cfg.precision.type) == precision.removeprefix("gguf-")


def test_a_type_llama_cpp_cannot_make_here_is_skipped_with_the_reason():
    from quantbench.gguf.types import check_file_type

    with pytest.raises(JobSkipped, match="importance matrix"):
        check_file_type("iq2_xxs")
    with pytest.raises(JobSkipped, match="unknown GGUF type 'q3_x'; choose one of: f32"):
        check_file_type("q3_x")


def test_tiny_decoder_tokenizer_is_sentencepiece_and_encodes_any_text(compose_config):
    cfg = compose_config(["model=tiny-llama"])
    family = registry.families().get("decoder")
    spec = resolve_model(cfg.model, family, Path(cfg.cache_dir))
    assert (Path(spec.load_path) / "tokenizer.model").is_file()
    tokenizer = family.load_processor(spec.load_path)
    text = " = Valkyria  Chronicles =\n\t日本 123"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


class _TwoCuts:
    """A model tokenizer and a GGUF file that cut " \xa03" differently into the same bytes (SmolLM2's
    transformers and llama.cpp tokenizers do exactly this), or, with `other_text`, into other text."""

    pieces = {216: b" ", 15442: b"\xc2\xa0", 3351: b" \xc2", 250: b"\xa0", 35: b"3", 99: b"4"}

    def __init__(self, other_text: bool = False):
        self.model_ids = [216, 15442, 99 if other_text else 35]

    def __call__(self, text, **kwargs):  # the model's tokenizer
        return {"input_ids": list(self.model_ids)}

    def tokenize(self, text, add_bos, special):  # llama.cpp's
        return [3351, 250, 35]

    def detokenize(self, tokens, special=False):
        return b"".join(self.pieces[token] for token in tokens)


def test_a_different_cut_of_the_same_text_is_scored_on_the_models_tokens_and_counted():
    from quantbench.quality.llama_cpp_logits import CheckedTokenizer, TokenizerMismatch

    fake = _TwoCuts()
    checked = CheckedTokenizer(fake, fake)
    assert checked(" \xa03", add_special_tokens=False)["input_ids"] == [216, 15442, 35]
    assert checked.texts_cut_differently == 1
    other = _TwoCuts(other_text=True)
    with pytest.raises(TokenizerMismatch, match="from token 0"):
        CheckedTokenizer(other, other)(" \xa03", add_special_tokens=False)
