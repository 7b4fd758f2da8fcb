"""Where a dotted key leaves a composed config, and the valid key nearest to it.

Read by quantbench.overrides to answer a misspelt key with one line ("did you mean
'bench.max_new_tokens'?") instead of Hydra's advice to append it with `+`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class Absent:
    """Where a dotted key leaves the composed config."""

    parent: str  # the deepest node on the key's path that exists ("" for the root)
    name: str  # the part of the key that node lacks
    candidates: tuple[str, ...]  # the keys that node has
    null: bool = False  # that node is null: nothing below it can be set


def absent_part(config: DictConfig, key: str) -> Absent | None:
    """None if `key` is in `config` or Hydra decides (a list, a value, an open node on the way)."""
    node: Any = config
    segments = key.split(".")
    for depth, segment in enumerate(segments):
        parent = ".".join(segments[:depth])
        if node is None:
            return Absent(parent, segment, (), null=True)
        if not isinstance(node, DictConfig) or not OmegaConf.is_struct(node):
            return None
        if segment not in node.keys():
            return Absent(parent, segment, tuple(str(name) for name in node.keys()))
        if OmegaConf.is_missing(node, segment):
            return None
        node = OmegaConf.select(node, segment, throw_on_resolution_failure=False)
    return None


def _depth(place: Absent) -> int:
    return len(place.parent.split(".")) if place.parent else 0


def describe(key: str, places: list[Absent], top_level: list[str]) -> str:
    """Why `key` is not in the composed config(s), from the places where it left each of them.

    The deepest place wins (an option that has `precision.calibration` says more about
    `precision.calibration.n_sampls` than one without it); at the top level, groups count as keys.
    """
    depth = max(_depth(each) for each in places)
    deepest = [each for each in places if _depth(each) == depth]
    place = deepest[0]
    if all(each.null for each in deepest):
        return f"'{place.parent}' is null in this config; select an option that fills it first"
    candidates = sorted({name for each in deepest for name in each.candidates} | set(top_level if depth == 0 else ()))
    close = difflib.get_close_matches(place.name, candidates, n=1)
    if close:
        segments = key.split(".")
        return f"did you mean '{'.'.join([*segments[:depth], close[0], *segments[depth + 1:]])}'?"
    where = f"'{place.parent}'" if place.parent else "the top level"
    return f"the keys at {where} are: {', '.join(candidates)}"
