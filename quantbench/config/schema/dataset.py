"""The `dataset` group's schemas (conf/dataset/): the prompts a job runs, and each loader's settings."""

from __future__ import annotations

from dataclasses import dataclass
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
