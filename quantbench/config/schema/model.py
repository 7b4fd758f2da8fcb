"""The `model` group's schema (conf/model/): which weights, from where, and what they are for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import MISSING


@dataclass
class ModelConfig:
    name: str = MISSING
    family: str = "decoder"  # a name in the quantbench.families entry-point group
    # hub: `id` on the Hugging Face hub; local: a directory at `path`;
    # gguf: `gguf_file` inside `path` or inside the installed Python package `gguf_package`;
    # random_init: `architecture` (a transformers config) with a locally trained tokenizer.
    source: str = "hub"
    id: Optional[str] = None
    revision: Optional[str] = None
    path: Optional[str] = None
    gguf_package: Optional[str] = None
    gguf_file: Optional[str] = None
    architecture: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    trust_remote_code: bool = False
    # A group size that divides every quantized layer's input width, for calibration methods.
    quant_group_size: Optional[int] = None
    # gptq | awq: the checkpoint at `id`/`path` already holds weights quantized by this method;
    # precision=gptq/awq then loads it as it is, without calibration.
    prequantized: Optional[str] = None
    # Shown wherever this model's quality numbers are reported (e.g. where its weights came from).
    note: Optional[str] = None
    # Random weights at a real size (llama-1b-random): speed and memory only; quality metrics are
    # refused with a reason in `quality_skipped` (quantbench/models/random_init.py).
    speed_only: bool = False
