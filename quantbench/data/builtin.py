"""About 64 short, varied prompts written for quantbench and shipped in the package."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantbench.data.base import Sample
from quantbench.models.tokenizer import builtin_corpus

if TYPE_CHECKING:
    from omegaconf import DictConfig


class BuiltinPrompts:
    name = "builtin"
    description = "64 short, varied prompts shipped with quantbench"

    def load(self, config: "DictConfig") -> list[Sample]:
        prompts = builtin_corpus()
        if config.limit is not None:
            prompts = prompts[: int(config.limit)]
        return [Sample(id=f"builtin-{index}", text=text) for index, text in enumerate(prompts)]
