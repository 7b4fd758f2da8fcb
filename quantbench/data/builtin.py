"""About 64 short, varied prompts written for quantbench and shipped in the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING

from quantbench.data.base import Sample

if TYPE_CHECKING:
    from omegaconf import DictConfig


def builtin_corpus() -> list[str]:
    text = resources.files("quantbench.data").joinpath("builtin_prompts.json").read_text()
    return list(json.loads(text)["prompts"])


class BuiltinPrompts:
    name = "builtin"
    description = "64 short, varied prompts shipped with quantbench"

    def load(self, config: DictConfig) -> list[Sample]:
        prompts = builtin_corpus()
        if config.limit is not None:
            prompts = prompts[: int(config.limit)]
        return [Sample(id=f"builtin-{index}", text=text) for index, text in enumerate(prompts)]
