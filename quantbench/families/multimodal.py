"""Image + text to text models: PaliGemma.

PaliGemma is a decoder-only Gemma whose prompt starts with image tokens (SigLIP patch
embeddings projected into the text width). Generation, token counting and decoding are therefore
the decoder family's: `generate` returns prompt + new tokens and only the new ones count. What
differs is loading (AutoModelForImageTextToText + AutoProcessor) and input building: each
sample's image goes through the processor, outside every timed region, and its image tokens are
input tokens (in `n_input_tokens`), never generated ones. The vision tower runs inside
`generate`, so time to first token covers image encoding plus the text prefill.

A text-only dataset (no `Sample.image`) gets a plain grey image per prompt, so any dataset can
drive a speed study of a multimodal model; the batch's `extra["metrics"]["blank_images"]` says
how many were substituted.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quantbench.errors import JobSkipped
from quantbench.families.base import PreparedBatch
from quantbench.families.decoder import DecoderFamily

if TYPE_CHECKING:
    from PIL import Image

    from quantbench.data.base import Sample

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
BLANK_IMAGE_GREY = (128, 128, 128)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")
# Processors already warned about substituted images: once per loaded model, not once per batch.
_warned_blank: weakref.WeakSet[Any] = weakref.WeakSet()


class MultimodalFamily(DecoderFamily):
    name = "multimodal"
    description = "image + text to text models such as PaliGemma (AutoModelForImageTextToText)"
    model_types: Sequence[str] = ("paligemma",)

    def from_pretrained(self, source: str, **kwargs: Any) -> Any:
        from transformers import AutoModelForImageTextToText

        return AutoModelForImageTextToText.from_pretrained(source, **kwargs)

    def load_processor(self, source: str, **kwargs: Any) -> Any:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(source, **kwargs)
        # Left padding keeps every prompt's last token next to the first generated one.
        processor.tokenizer.padding_side = "left"
        # Image tokens open the prompt: truncating from the left would cut them, and the model
        # refuses a prompt whose image-token count does not match its images.
        processor.tokenizer.truncation_side = "right"
        return processor

    def build_random_init(self, architecture: dict[str, Any], directory: Path, seed: int) -> None:
        """A PaliGemma with the given SigLIP `vision_config` and Gemma `text_config`, and a processor
        assembled offline: a SigLIP image processor plus a locally trained tokenizer with `<image>`."""
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, PaliGemmaProcessor, SiglipImageProcessor

        from quantbench.models.tokenizer import train_tokenizer

        architecture = dict(architecture)
        if architecture.get("model_type") != "paligemma":
            raise ValueError(
                f"the multimodal family builds random-init PaliGemma models; got model_type "
                f"'{architecture.get('model_type')}'; set architecture.model_type: paligemma"
            )
        try:
            vision = dict(architecture.pop("vision_config"))
            text = dict(architecture.pop("text_config"))
        except KeyError as missing:
            raise ValueError(f"a random-init PaliGemma needs architecture.{missing.args[0]}") from None
        tokenizer = train_tokenizer(
            vocab_size=int(architecture.pop("tokenizer_vocab_size", 512)), extra_special_tokens=[IMAGE_TOKEN]
        )
        image_size_px, patch_px = int(vision["image_size"]), int(vision["patch_size"])
        image_processor = SiglipImageProcessor(
            size={"height": image_size_px, "width": image_size_px},
            image_seq_length=(image_size_px // patch_px) ** 2,  # one token per patch
        )
        # The processor adds PaliGemma's <loc>/<seg> tokens to the tokenizer: size the vocab after it.
        processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
        vocab_size = len(processor.tokenizer)
        special_ids = {
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        text_width = int(text["hidden_size"])
        config = AutoConfig.for_model(
            **{"projection_dim": text_width, "hidden_size": text_width, **architecture},
            vision_config=vision,
            text_config={**text, "vocab_size": vocab_size, **special_ids},
            vocab_size=vocab_size,
            image_token_index=processor.image_token_id,
            **special_ids,
        )
        torch.manual_seed(seed)  # for identical weights on every machine
        model = AutoModelForImageTextToText.from_config(config)
        model.save_pretrained(directory)
        processor.save_pretrained(directory)

    def prepare_batch(
        self,
        samples: Sequence[Sample],
        processor: Any,
        *,
        device: str,
        max_input_tokens: int,
        chat_template: bool,  # PaliGemma has no chat template: prompts are "<task> <question>"
    ) -> PreparedBatch:
        from quantbench.data.images import open_image

        image_tokens_per_image = getattr(processor, "image_seq_length", None)
        image_token = getattr(processor, "image_token", None)
        if image_tokens_per_image is None or image_token is None:
            raise JobSkipped(
                f"the multimodal family handles PaliGemma-style processors (with image_token and "
                f"image_seq_length); {type(processor).__name__} lacks them"
            )
        images = [open_image(sample.image) if sample.image is not None else None for sample in samples]
        n_blank = sum(image is None for image in images)
        if n_blank:
            images = [image if image is not None else blank_image(processor) for image in images]
            if processor not in _warned_blank:
                _warned_blank.add(processor)
                log.warning("the dataset has prompts without images; each gets a plain grey image (docs/families.md)")
        texts = [sample.text if image_token in sample.text else image_token + sample.text for sample in samples]
        encoded = processor(
            images=images,
            text=texts,
            padding=True,
            truncation=True,
            # max_input_tokens bounds the text; the image tokens come on top of it.
            max_length=max_input_tokens + image_tokens_per_image,
            return_tensors="pt",
        )
        # `labels` (for fine-tuning) stays behind: generation must not compute a loss.
        inputs = {key: encoded[key].to(device) for key in MODEL_INPUTS if key in encoded}
        return PreparedBatch(
            inputs=inputs,
            batch_size=len(samples),
            n_input_tokens=int(encoded["attention_mask"].sum()),  # image tokens included
            extra={
                "generate_kwargs": {"pad_token_id": processor.tokenizer.pad_token_id},
                "metrics": {"image_tokens_per_sample": int(image_tokens_per_image), "blank_images": n_blank},
            },
        )

    def next_token_logits(self, model: Any, processor: Any, input_ids: Any) -> Any:
        """Quality-metric hook: `input_ids` scored as the answer after a plain grey image and an
        empty prompt. Row t is the distribution of token t + 1, as for a decoder-only forward pass;
        the image prefix is the same for every precision, so the distributions compare."""
        import torch

        prefix = processor(images=[blank_image(processor)], text=[processor.image_token], return_tensors="pt")
        batch = input_ids.shape[0]
        prefix_ids = prefix["input_ids"].to(input_ids.device).expand(batch, -1)
        n_prefix = prefix_ids.shape[1]
        # token_type_ids 0: the bidirectional prefix (image + prompt); 1: the causal answer being scored.
        token_type_ids = torch.cat([torch.zeros_like(prefix_ids), torch.ones_like(input_ids)], dim=1)
        logits = model(
            input_ids=torch.cat([prefix_ids, input_ids], dim=1),
            pixel_values=prefix["pixel_values"].to(input_ids.device).expand(batch, -1, -1, -1),
            token_type_ids=token_type_ids,
            use_cache=False,
        ).logits
        return logits[:, n_prefix:]


def blank_image(processor: Any) -> Image.Image:
    """A plain grey image at the processor's input size (so resizing it is a no-op)."""
    from PIL import Image

    size = getattr(getattr(processor, "image_processor", None), "size", None) or {}
    height, width = int(size.get("height", 224)), int(size.get("width", 224))
    return Image.new("RGB", (width, height), BLANK_IMAGE_GREY)
