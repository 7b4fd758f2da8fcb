"""Random-init models at the sizes people deploy (`llama-1b-random`, `llama-8b-random`, `phi-2-random`).

Their weights are random, so they measure speed and memory only: the configs set
`model.speed_only`, and quality metrics are refused for them (quantbench.quality). What they share
with the real models is the architecture, counted here on the meta device (no memory, no time), and
the vocabulary size: the locally trained tokenizer is small (the corpus is quantbench's 64 built-in
prompts), so its vocabulary is padded with `<unused_N>` entries up to the real size. Prompts are
cut by the small tokenizer; the embedding table, the LM head and the logits have the real width.

A model that cannot fit is a `skipped` job before anything is built: `llama-8b-random` in fp32
needs 32 GB, which a 23 GB machine does not have.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from quantbench.errors import JobSkipped
from quantbench.measure.memory import GB, proc_field_bytes

if TYPE_CHECKING:
    from quantbench.runtime.device import Device

# Keys of `model.architecture` that are quantbench's, not the transformers config's.
TOKENIZER_VOCAB_KEY = "tokenizer_vocab_size"
TOKENIZER_FILE = "tokenizer.json"
SENTENCEPIECE_FILE = "tokenizer.model"
BYTES_PER_PARAMETER = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}
# A precision without a dense dtype (nf4, int8, GPTQ, AWQ, ...) holds at least 4 bits a weight.
LOWEST_BYTES_PER_PARAMETER = 0.5


def transformers_config(architecture: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    return AutoConfig.for_model(**{key: value for key, value in architecture.items() if key != TOKENIZER_VOCAB_KEY})


def parameter_count(architecture: dict[str, Any]) -> int | None:
    """The model's parameters, counted on the meta device (nothing allocated); None when the
    architecture does not name its model class (`architectures: [LlamaForCausalLM]`)."""
    import torch
    import transformers

    config = transformers_config(architecture)
    names = getattr(config, "architectures", None) or []
    model_class = getattr(transformers, names[0], None) if names else None
    if model_class is None:
        return None
    with torch.device("meta"):
        model = model_class(config)
    return sum(parameter.numel() for parameter in model.parameters())


def materialise_dtype(architecture: dict[str, Any]) -> str:
    """The dtype the checkpoint is written in: the architecture's `dtype` (the real models'
    config.json say bfloat16 or float16), else float32. Loading at another precision casts it."""
    return str(architecture.get("dtype") or "float32")


def pad_tokenizer_vocab(directory: Path, vocab_size: int) -> None:
    """Pad the saved tokenizer's vocabulary to `vocab_size` with `<unused_N>` entries that no text
    encodes to, so every id the model can generate decodes to something (Llama 3 reserves ids the
    same way). The SentencePiece file is removed: it would still say the small size."""
    path = Path(directory) / TOKENIZER_FILE
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    if len(vocab) > vocab_size:
        raise ValueError(
            f"the trained tokenizer has {len(vocab)} entries, more than the model's vocab_size {vocab_size}"
        )
    for token_id in range(len(vocab), vocab_size):
        vocab[f"<unused_{token_id}>"] = token_id
    path.write_text(json.dumps(data, ensure_ascii=False))
    (Path(directory) / SENTENCEPIECE_FILE).unlink(missing_ok=True)


def available_host_memory_bytes() -> int | None:
    """MemAvailable (Linux): what can be allocated without swapping; None elsewhere (no check)."""
    return proc_field_bytes("/proc/meminfo", "MemAvailable")


def bytes_per_parameter(precision: DictConfig) -> float:
    return BYTES_PER_PARAMETER.get(str(precision.get("dtype")), LOWEST_BYTES_PER_PARAMETER)


def check_fits(model: DictConfig, precision: DictConfig, device: Device) -> None:
    """JobSkipped, before anything is built, when a random-init model's weights cannot fit: the
    checkpoint is built in host memory in its own dtype, then loaded at the job's precision."""
    if model.source != "random_init" or not model.architecture:
        return
    architecture = OmegaConf.to_container(model.architecture, resolve=True)
    count = parameter_count(architecture)
    if count is None:
        return
    host_gb = (available_host_memory_bytes() or 0) / GB
    built = materialise_dtype(architecture)
    load_gb = count * bytes_per_parameter(precision) / GB
    load_room = (
        (device.total_memory_gb or 0.0, f"{device.name}'s memory")
        if device.is_cuda
        else (host_gb, "available host memory")
    )
    needs = [  # (GB needed, for what, GB there, where, what to do)
        (
            count * BYTES_PER_PARAMETER.get(built, 4.0) / GB,
            f"building its {built} checkpoint",
            host_gb,
            "available host memory",
            "use a machine with more memory",
        ),
        (
            load_gb,
            f"its {precision.name} weights",
            *load_room,
            "use a lower precision, a smaller model or a larger machine",
        ),
    ]
    for need_gb, what, have_gb, where, advice in needs:
        if have_gb and need_gb > have_gb:
            raise JobSkipped(
                f"model '{model.name}' ({count / 1e9:.2f}B parameters) does not fit: {what} need "
                f"{need_gb:.1f} GB, this machine has {have_gb:.1f} GB of {where}; {advice}"
            )


def speed_only_reason(model: DictConfig) -> str:
    """Why quality metrics are refused for a `speed_only` model: one line, for `quality_skipped`."""
    return (
        f"model '{model.name}' has random weights (model.speed_only=true), so quality metrics would "
        "measure noise; measure quality on a trained model"
    )
