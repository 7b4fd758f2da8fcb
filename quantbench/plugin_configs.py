"""Config trees that installed plugins contribute (entry-point group `quantbench.configs`).

Each entry point names a package holding a conf tree laid out like quantbench/conf
(`precision/*.yaml`, `model/*.yaml`, ...). hydra_plugins/quantbench_searchpath adds each to
Hydra's search path; `quantbench list` shows their options. Only importlib is imported here:
Hydra loads the search-path plugin at every start.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.resources
from dataclasses import dataclass

CONFIGS_GROUP = "quantbench.configs"


@dataclass(frozen=True)
class ConfigPackage:
    name: str  # the entry point's name
    module: str  # the package holding the conf tree
    distribution: str
    version: str


def config_packages() -> list[ConfigPackage]:
    """Every registered conf tree, sorted by entry-point name (the search-path order)."""
    found = []
    for entry_point in metadata.entry_points(group=CONFIGS_GROUP):
        dist = getattr(entry_point, "dist", None)
        found.append(
            ConfigPackage(
                name=entry_point.name,
                module=entry_point.value.split(":")[0].strip(),
                distribution=(dist.metadata["Name"] if dist else None) or "unknown",
                version=(dist.version if dist else None) or "unknown",
            )
        )
    return sorted(found, key=lambda package: package.name)


def config_options(module: str) -> list[str]:
    """`group=option` for every YAML in the tree (imports the conf package, which holds only YAML)."""
    root = importlib.resources.files(module)
    options = []

    def walk(node, group: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{group}/{child.name}" if group else child.name)
            elif child.name.endswith(".yaml") and group:
                options.append(f"{group}={child.name[: -len('.yaml')]}")

    walk(root, "")
    return sorted(options)
