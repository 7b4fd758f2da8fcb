"""Encoder-decoder (seq2seq) language models: T5, Flan-T5, mT5.

Prompts are tokenized exactly as for decoder-only models (T5 tokenizers append their own `</s>`),
so this family reuses the decoder family's tokenizer settings, input building and decoding. What
differs is the Auto class, the random-init architecture, and where the generated tokens are: the
model returns the decoder sequence, which starts with `decoder_start_token_id` instead of the
prompt. Generated tokens are therefore counted on the decoder side, and the first-token clock
fires after the encoder pass plus the first decoder step (both run inside `generate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quantbench.families.base import GeneratedBatch, PreparedBatch
from quantbench.families.decoder import DecoderFamily, greedy_generation_kwargs

if TYPE_CHECKING:
    from quantbench.measure.timing import FirstTokenClock

# transformers always ties T5's output head to its input embedding, and at T5's initial scale the
# embedding dominates the residual stream: a random model then only repeats its start token.
# Shrinking the embedding lets the prompt-dependent attention outputs pick the next token, so a
# random-init model's outputs differ between prompts (and between precisions) as a trained one's do.
RANDOM_INIT_EMBEDDING_SCALE = 0.1


class EncoderDecoderFamily(DecoderFamily):
    name = "encoder-decoder"
    description = "encoder-decoder seq2seq language models such as T5 and Flan-T5 (AutoModelForSeq2SeqLM)"
    # The T5 code path: tested on T5; mT5 and UMT5 share its classes and generation.
    model_types: Sequence[str] = ("t5", "mt5", "umt5")

    def from_pretrained(self, source: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM.from_pretrained(source, **kwargs)

    def build_random_init(self, architecture: dict[str, Any], directory: Path, seed: int) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSeq2SeqLM

        from quantbench.models.tokenizer import train_tokenizer

        architecture = dict(architecture)
        tokenizer = train_tokenizer(vocab_size=int(architecture.pop("tokenizer_vocab_size", 512)))
        config = AutoConfig.for_model(
            **architecture,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            # T5's convention: the decoder starts from the padding token.
            decoder_start_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(seed)  # for identical weights on every machine
        model = AutoModelForSeq2SeqLM.from_config(config)
        with torch.no_grad():
            model.get_input_embeddings().weight.mul_(RANDOM_INIT_EMBEDDING_SCALE)
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)

    def generate(
        self, model: Any, batch: PreparedBatch, *, max_new_tokens: int, clock: FirstTokenClock | None
    ) -> GeneratedBatch:
        import torch

        with torch.inference_mode():
            output = model.generate(
                **batch.inputs,
                **greedy_generation_kwargs(max_new_tokens, clock),
                **batch.extra.get("generate_kwargs", {}),
            )
        # The decoder sequence is [decoder_start_token, generated...]; the prompt lives in the encoder.
        new_tokens = output[:, 1:]
        return GeneratedBatch(new_tokens=new_tokens, n_generated_tokens=int(new_tokens.numel()))

    def next_token_logits(self, model: Any, processor: Any, input_ids: Any) -> Any:
        """Quality-metric hook: the decoder teacher-forced on `input_ids` after an empty prompt.

        The encoder reads only the end-of-sequence token (what T5's tokenizer makes of ""), so the
        decoder acts as a language model of the sequence; row t is the distribution of token t + 1,
        as for a decoder-only forward pass. The conditioning is the same for every precision.
        """
        import torch

        encoder_ids = torch.full(
            (input_ids.shape[0], 1), processor.eos_token_id, dtype=torch.long, device=input_ids.device
        )
        return model(input_ids=encoder_ids, decoder_input_ids=input_ids, use_cache=False).logits
