"""The `dataset` group's schemas (conf/dataset/): the prompts a job runs, and each loader's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING


@dataclass
class DatasetConfig:
    name: str = MISSING
    loader: str = MISSING  # a name in the quantbench.datasets entry-point group
    path: Optional[str] = None  # a local file; when unset, the loader's default source
    hub_id: Optional[str] = None
    split: Optional[str] = None
    limit: Optional[int] = None  # at most this many samples
    chat_template: bool = False  # wrap each prompt in the tokenizer's chat template, if it has one


@dataclass
class ImageFolderDatasetConfig(DatasetConfig):
    # `path` is the JSONL of prompts; relative image paths in it start here (default: its folder).
    image_dir: Optional[str] = None


@dataclass
class SyntheticImagesDatasetConfig(DatasetConfig):
    num_samples: int = 16
    image_size: int = 224  # pixels a side; the processor resizes to the model's input size anyway
    prompt: str = "answer en what color is the shape?"
    seed: int = 0


@dataclass
class PubMedQADatasetConfig(DatasetConfig):
    split: Optional[str] = "test"  # test: the standard 500 questions; train: the other 500; all: 1000
    test_ids_path: Optional[str] = None  # test_ground_truth.json; default: beside `path`


@dataclass
class WikiTextDatasetConfig(DatasetConfig):
    hub_config: str = "wikitext-2-raw-v1"  # the hub dataset's configuration (subset)


@dataclass
class TokenLengthConfig:
    """Token lengths drawn from a distribution (quantbench/data/lengths.py): `mean` and `stdev` are
    the lengths' own, `min`/`max` clip them (max null: no clip; the model's context is checked)."""

    distribution: str = "fixed"  # fixed | uniform | normal | lognormal
    mean: float = 128.0
    stdev: float = 0.0  # not used by fixed
    min: int = 1
    max: Optional[int] = None


@dataclass
class SharedPrefixConfig:
    """K shared system prompts of exactly L tokens in front of the questions (0 and 0: none)."""

    groups: int = 0  # K; each prompt (each conversation) is given one of them, seeded
    tokens: int = 0  # L, the system prompt's own tokens (its template overhead comes on top)


@dataclass
class ConversationConfig:
    """Each prompt a conversation of `turns` requests, each carrying the whole history."""

    turns: int = 1


@dataclass
class SyntheticTextDatasetConfig(DatasetConfig):
    """dataset=synthetic: requests of drawn input/output token counts cut from real text (docs/serving.md)."""

    source: str = "wikitext2"  # the text: wikitext2 (the file at `path`; null: the hub) or builtin
    n_prompts: int = 256  # distinct prompts (with conversation.turns > 1: distinct conversations)
    # The whole input each request sends as the server counts it (template and system prompt included).
    input_tokens: TokenLengthConfig = field(default_factory=TokenLengthConfig)
    # Tokens each request asks for (its own max_tokens, the end of sequence held back).
    output_tokens: TokenLengthConfig = field(default_factory=lambda: TokenLengthConfig(mean=32.0))
    prefix: SharedPrefixConfig = field(default_factory=SharedPrefixConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    seed: int = 0  # the YAML options set ${bench.seed}
    chat_template: bool = True
