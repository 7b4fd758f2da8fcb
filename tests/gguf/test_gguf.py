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


def test_an_unknown_type_is_skipped_with_the_types_there_are():
    from quantbench.gguf.types import check_file_type, needs_importance_matrix

    with pytest.raises(JobSkipped, match="unknown GGUF type 'q3_x'; choose one of: f32, .*, iq4_xs"):
        check_file_type("q3_x")
    assert check_file_type("IQ2_XXS") == "iq2_xxs" and needs_importance_matrix("iq2_xxs")
    assert not needs_importance_matrix("q4_k_m")


def test_importance_matrix_types_calibrate_on_the_text_gptq_and_awq_use(compose_config):
    gptq = compose_config(["precision=gptq"]).precision.calibration
    for awq_or_iq in ("awq", "gguf-iq4_xs"):
        assert compose_config([f"precision={awq_or_iq}"]).precision.calibration == gptq
    cfg = compose_config(["precision=gguf-iq4_xs", "precision.calibration.dataset=wikitext2"])
    assert cfg.precision.type == "iq4_xs" and cfg.precision.calibration.dataset == "wikitext2"


def test_cache_list_describes_an_importance_matrix_entry(tmp_path):
    from quantbench.cache import atomic_directory, entry_path, write_manifest
    from quantbench.gguf.imatrix import ImatrixRecipe
    from quantbench.gguf.store import gguf_details

    calibration = {"source": {"option": "builtin"}, "n_samples": 128, "seq_len": 512, "seed": 0}
    recipe = ImatrixRecipe("tiny-llama", "abc123", None, calibration, "0.3.36", "1 (abcdef0)")
    entry = entry_path(tmp_path, recipe)
    assert entry.parent.name == "gguf" and entry.name.startswith("tiny-llama-imatrix-")
    with atomic_directory(entry) as directory:
        built = {"calibration_windows": 5, "tokens_per_window": 512, "chunks": 5, "imatrix_s": 41.0}
        write_manifest(directory, recipe, {**built, "text_sha256": "0123456789abcdef"})
    assert gguf_details(entry) == (
        "importance matrix (iq types): 5 windows x 512 tokens of builtin (seed 0, text sha256 0123456789ab), "
        "5 chunks, made in 41 s, llama.cpp 1 (abcdef0)"
    )


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
