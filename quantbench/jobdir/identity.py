"""The config identity of a job: the config a result is a function of (`job_config`), its hash
(`config_hash`), the identity columns (`identity_of`), and how a config stored by an older
quantbench is brought up to date before a resumed sweep compares hashes.

`config_hash` hashes the resolved job config less HASH_EXCLUDED_KEYS (what changes how or where a
job runs, not what it measures). A resumed sweep does not trust the hash string an old result.json
stores, because an upgrade of quantbench changes it without changing the measurement: it upgrades
the stored config and hashes that. Upgrading a stored config:
1. a renamed key (RENAMED_KEYS) takes its new name (`renamed_config`, also applied on every read);
2. a key the stored config lacks (a later quantbench added it) takes the value this run gives it,
   unless this run's command line sets it: a key left at its default hashes as before it existed,
   while `bench.max_seconds=60` typed on the command line is a change and re-measures. A group
   chosen on the command line (`precision=nf4`) counts as set only where the stored config lacks
   the whole group (a new group such as a scenario); keys that the option's file holds are defaults
   (`CommandLineKeys`, `upgraded_config`).
Whoever adds a config key therefore gives it a default that keeps the old measurement valid. A key
that was removed, not renamed, re-measures every job that had it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Collection, Iterable

from omegaconf import DictConfig, OmegaConf

from quantbench.cache import stable_hash
from quantbench.config.schema import RENAMED_KEYS

if TYPE_CHECKING:
    from quantbench.runtime.device import Device

# Dotted keys of the job config that do not change a measurement.
HASH_EXCLUDED_KEYS = (
    "resume",  # whether to reuse is not part of what is reused
    "bench.isolation",  # in a child process or in this one: the same job
    "bench.timeout_s",
    "bench.repeats",  # how many repeats a sweep runs; each job's own index (bench.repeat) counts
    "cache_dir",  # where materialised models live, not which
    "analysis",  # statistics and report settings apply after the sweep
    "hardware.slurm",  # the cluster's name for a machine, not the machine
)


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved job config without Hydra's own node: what the result is a function of."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return container


def config_hash(config: dict[str, Any]) -> str:
    """The hash stored in result.json, over the resolved job config less HASH_EXCLUDED_KEYS."""
    try:
        return stable_hash(_pruned_copy(config))
    except TypeError:  # keys of several types, which JSON sorts only as the text it writes them as
        kept = json.loads(json.dumps(config, default=str))
    for dotted in HASH_EXCLUDED_KEYS:
        *parents, leaf = dotted.split(".")
        node = _node(kept, parents)
        if node is not None:
            node.pop(leaf, None)
    return stable_hash(kept)


def _pruned_copy(config: dict[str, Any]) -> dict[str, Any]:
    """`config` less HASH_EXCLUDED_KEYS, copying only the dicts on the way to a pruned key (a deep
    copy per hash was most of the collector's time at 10,000 jobs). The same JSON text as pruning a
    copy read back from JSON, except where keys of several types meet: sorting them raises TypeError."""
    kept = dict(config)
    for dotted in HASH_EXCLUDED_KEYS:
        *parents, leaf = dotted.split(".")
        node = kept
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                node = None
                break
            node[key] = child = dict(child)
            node = child
        if node is not None:
            node.pop(leaf, None)
    return kept


def identity_of(cfg: DictConfig, device: Device | None) -> dict[str, Any]:
    return {
        "model": cfg.model.name,
        "precision": cfg.precision.name,
        "backend": cfg.precision.backend,
        "family": cfg.model.family,
        "batch": int(cfg.batch),
        "hardware": cfg.hardware.name,
        "dataset": cfg.dataset.name,
        "device": device.name if device else None,
    }


def renamed_config(config: dict[str, Any], in_place: bool = False) -> dict[str, Any]:
    """`config` with each key of RENAMED_KEYS under its new name (a copy unless `in_place`; idempotent)."""
    config = config if in_place else copy.deepcopy(config)
    for old, new in RENAMED_KEYS.items():
        *old_parents, old_leaf = old.split(".")
        node = _node(config, old_parents)
        if node is None or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_parents, new_leaf = new.split(".")
        target = config
        for key in new_parents:
            target = target.setdefault(key, {})
        target.setdefault(new_leaf, value)
    return config


def _node(config: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    node: Any = config
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


@dataclass(frozen=True)
class CommandLineKeys:
    """What a run's command line set: values (`bench.max_new_tokens=16` sets that key and every key
    below it) and group choices (`precision=nf4` sets the group's node, not the keys its option holds)."""

    values: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_overrides(cls, overrides: Iterable[str], groups: Collection[str]) -> CommandLineKeys:
        """From Hydra override strings, read with Hydra's own parser; `groups` names the config groups."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        values, chosen = set(), set()
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            key = override.key_or_group
            if key in groups:
                chosen.add(override.package or key.replace("/", "."))
            elif not key.startswith("hydra.") and key != "hydra":
                values.add(key)
        return cls(frozenset(values), frozenset(chosen))

    def sets(self, key: str) -> bool:
        if any(key == value or key.startswith(value + ".") or value.startswith(key + ".") for value in self.values):
            return True
        return any(key == group or group.startswith(key + ".") for group in self.groups)


def upgraded_config(
    stored: dict[str, Any], current: dict[str, Any], command_line: CommandLineKeys | None
) -> dict[str, Any]:
    """A stored config (keys already renamed) as this quantbench would have written it: each key it
    lacks takes `current`'s value unless `command_line` set it. None (who set what is unknown): as stored."""
    upgraded = copy.deepcopy(stored)
    if command_line is None:
        return upgraded

    def fill(into: dict[str, Any], source: dict[str, Any], prefix: str) -> None:
        for key, value in source.items():
            dotted = f"{prefix}{key}"
            if key not in into:
                if not command_line.sets(dotted):
                    into[key] = copy.deepcopy(value)
            elif isinstance(into[key], dict) and isinstance(value, dict):
                fill(into[key], value, dotted + ".")

    fill(upgraded, current, "")
    return upgraded
