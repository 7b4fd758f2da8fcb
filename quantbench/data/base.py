"""What a dataset yields, and the protocol a dataset plugin implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass
class Sample:
    id: str
    text: str  # the prompt (for multimodal samples: the text part)
    image: Any = None  # a path or a PIL image for multimodal samples
    answer: str | None = None  # the reference answer, where known
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Dataset(Protocol):
    name: str
    description: str

    def load(self, config: DictConfig) -> list[Sample]:
        """Read the samples the config asks for; raise DatasetError naming the file on bad input."""


def expand_path(path: str | Path) -> Path:
    return Path(path).expanduser()
