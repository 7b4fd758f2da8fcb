"""Where a dotted key leaves a composed config, and the valid key nearest to it.

Read by quantbench.cli.overrides to answer a misspelt key with one line ("did you mean
'bench.max_new_tokens'?") instead of Hydra's advice to append it with `+`, and a YAML option that
does not compose (a misspelt key in a plugin's file) with one line instead of Hydra's several.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from quantbench.config.plugin_configs import config_file
from quantbench.errors import closest_name


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
    close = closest_name(place.name, candidates)
    if close:
        segments = key.split(".")
        return f"did you mean '{'.'.join([*segments[:depth], close, *segments[depth + 1 :]])}'?"
    where = f"'{place.parent}'" if place.parent else "the top level"
    return f"the keys at {where} are: {', '.join(candidates)}"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def composition_error(error: Exception, selection: str) -> str:
    """One line for a config option that fails to compose (`selection`: `precision=my-option`).

    Hydra says `In 'precision/my-option': ConfigKeyError raised while composing config:` and the
    OmegaConf error over several lines; this names the key, the file and the closest valid key:
    `unknown key 'dtyp' in .../precision/my-option.yaml (precision=my-option, schema
    DensePrecisionConfig); did you mean 'dtype'?`.
    """
    cause = error if isinstance(error, OmegaConfBaseException) else (error.__cause__ or error.__context__)
    where = re.match(r"In '([^']+)'", str(error))
    config_path = where.group(1) if where else selection.replace("=", "/", 1)
    file = config_file(config_path) or f"the config '{config_path}'"
    if isinstance(cause, ConfigKeyError) and getattr(cause, "key", None) is not None:
        package = config_path.rpartition("/")[0].replace("/", ".")
        full_key = str(getattr(cause, "full_key", None) or cause.key)
        key = full_key.removeprefix(package + ".") if package else full_key
        schema = getattr(getattr(cause, "object_type", None), "__name__", None)
        parent = getattr(cause, "parent_node", None)
        candidates = [str(name) for name in parent.keys()] if isinstance(parent, DictConfig) else []
        close = closest_name(str(cause.key), candidates)
        where = key[: len(key) - len(str(cause.key))]  # `calibration.` for a nested key
        hint = f"did you mean '{where}{close}'?" if close else f"the keys there are: {', '.join(candidates)}"
        return f"unknown key '{key}' in {file} ({selection}{f', schema {schema}' if schema else ''}); {hint}"
    reason = _first_line(str(cause if isinstance(cause, Exception) else error))
    reason = re.sub(r"^In '[^']+': ", "", reason)  # the file is named below
    return f"{selection} does not compose: {reason} (in {file})"
