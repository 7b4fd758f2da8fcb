"""Decoder-only language models (Llama, SmolLM2, Phi, ...): batched greedy generation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quantbench.families.base import GeneratedBatch, PreparedBatch

if TYPE_CHECKING:
    from quantbench.data.base import Sample
    from quantbench.measure.timing import FirstTokenClock


def greedy_generation_kwargs(max_new_tokens: int, clock: FirstTokenClock | None) -> dict[str, Any]:
    """Greedy decoding of exactly max_new_tokens: min == max, so end-of-sequence cannot stop a
    sample early and every precision generates the same number of tokens. Sampling settings that a
    model's generation_config may carry are cleared so they neither apply nor warn."""
    from transformers import StoppingCriteriaList

    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "temperature": None,
        "top_p": None,
        "top_k": None,
    }
    if clock is not None:
        kwargs["stopping_criteria"] = StoppingCriteriaList([clock])
    return kwargs


class DecoderFamily:
    name = "decoder"
    description = "decoder-only causal language models (AutoModelForCausalLM)"
    model_types: Sequence[str] = ()  # any causal LM transformers knows

    def from_pretrained(self, source: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(source, **kwargs)

    def load_processor(self, source: str, **kwargs: Any) -> Any:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        # Left padding keeps every prompt's last token next to the first generated one.
        tokenizer.padding_side = "left"
        tokenizer.truncation_side = "left"  # keep the end of a long prompt: the question
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def build_random_init(self, architecture: dict[str, Any], directory: Path, seed: int) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        from quantbench.models.random_init import materialise_dtype, pad_tokenizer_vocab
        from quantbench.models.tokenizer import train_sentencepiece_tokenizer
        from quantbench.runtime.dtypes import torch_dtype

        architecture = dict(architecture)  # the caller's copy keys the cache: leave it as it was
        # SentencePiece, so llama.cpp's converter can make GGUF files of the tiny models too.
        tokenizer = train_sentencepiece_tokenizer(
            directory, vocab_size=int(architecture.pop("tokenizer_vocab_size", 512))
        )
        # A real model's vocabulary size (llama-1b-random: 128256) pads the small tokenizer up to it.
        vocab_size = int(architecture.pop("vocab_size", len(tokenizer)))
        config = AutoConfig.for_model(
            **architecture,
            vocab_size=vocab_size,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        torch.manual_seed(seed)  # for identical weights on every machine
        # Initialised in the checkpoint's own dtype: a 1B model in bf16 needs 2.5 GB, not 4.9.
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype(materialise_dtype(architecture)))
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        if vocab_size > len(tokenizer):
            pad_tokenizer_vocab(directory, vocab_size)

    def prompt_texts(self, samples: Sequence[Sample], tokenizer: Any, chat_template: bool) -> list[str]:
        texts = [sample.text for sample in samples]
        if chat_template and getattr(tokenizer, "chat_template", None):
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
                )
                for text in texts
            ]
        return texts

    def prepare_batch(
        self,
        samples: Sequence[Sample],
        processor: Any,
        *,
        device: str,
        max_input_tokens: int,
        chat_template: bool,
    ) -> PreparedBatch:
        use_template = chat_template and bool(getattr(processor, "chat_template", None))
        encoded = processor(
            self.prompt_texts(samples, processor, chat_template),
            padding=True,
            truncation=True,
            max_length=max_input_tokens,
            return_tensors="pt",
            # A chat template already writes its own begin-of-sequence token.
            add_special_tokens=not use_template,
        )
        inputs = {key: value.to(device) for key, value in encoded.items() if key in ("input_ids", "attention_mask")}
        return PreparedBatch(
            inputs=inputs,
            batch_size=len(samples),
            n_input_tokens=int(encoded["attention_mask"].sum()),
            extra={"generate_kwargs": {"pad_token_id": processor.pad_token_id}},
        )

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
        new_tokens = output[:, batch.inputs["input_ids"].shape[1] :]
        return GeneratedBatch(new_tokens=new_tokens, n_generated_tokens=int(new_tokens.numel()))

    def decode(self, processor: Any, generated: GeneratedBatch) -> list[str]:
        return processor.batch_decode(generated.new_tokens, skip_special_tokens=True)
