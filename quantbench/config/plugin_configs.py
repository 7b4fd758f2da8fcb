"""Config trees and schemas that installed plugins contribute.

`quantbench.configs`: each entry point names a package holding a conf tree laid out like
quantbench/conf (`precision/*.yaml`, `model/*.yaml`, ...). hydra_plugins/quantbench_searchpath adds
each to Hydra's search path; `quantbench list` shows their options.

`quantbench.schemas`: each entry point names the dataclass of a plugin's options (`torchao_intx =
"quantbench_torchao_intx.backend:IntxSettings"`); quantbench.config.schema.register_configs stores it as
`base_<name>` for the plugin's YAML to extend, like a built-in schema.

Only importlib (and quantbench.config.registry, which imports no more) is imported here: Hydra loads
the search-path plugin at every start. Schemas are imported only when quantbench's own app
registers its configs.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.resources
from dataclasses import dataclass

from quantbench.config.registry import first_line, provenance, unique_entry_points

CONFIGS_GROUP = "quantbench.configs"
SCHEMAS_GROUP = "quantbench.schemas"
SCHEMA_PREFIX = "base_"  # schemas share their group with options; the prefix keeps them apart


@dataclass(frozen=True)
class ConfigPackage:
    name: str  # the entry point's name
    module: str  # the package holding the conf tree
    distribution: str
    version: str


def config_packages() -> list[ConfigPackage]:
    """Every registered conf tree, sorted by entry-point name (the search-path order)."""
    found = []
    for entry_point in unique_entry_points(metadata.entry_points(group=CONFIGS_GROUP), "config package"):
        distribution, version = provenance(entry_point)
        found.append(ConfigPackage(entry_point.name, entry_point.value.split(":")[0].strip(), distribution, version))
    return sorted(found, key=lambda package: package.name)


@dataclass(frozen=True)
class PluginSchema:
    name: str  # base_<entry point name>: what the plugin's YAML names in its defaults list
    node: type | None  # the dataclass; None when it failed to import
    distribution: str
    version: str
    error: str | None = None  # why it failed to import, one line

    @property
    def origin(self) -> str:
        return f"schema '{self.name}' from package {self.distribution} {self.version}"


def plugin_schemas(entry_points: list[metadata.EntryPoint] | None = None) -> list[PluginSchema]:
    """Every registered schema, imported, sorted by name; one that fails to import carries its error."""
    if entry_points is None:
        entry_points = list(metadata.entry_points(group=SCHEMAS_GROUP))
    found = []
    for entry_point in unique_entry_points(entry_points, "schema"):
        distribution, version = provenance(entry_point)
        name = SCHEMA_PREFIX + entry_point.name
        try:
            found.append(PluginSchema(name, entry_point.load(), distribution, version))
        except Exception as error:
            failure = f"{entry_point.value} failed to import: {type(error).__name__}: {first_line(error)}"
            found.append(PluginSchema(name, None, distribution, version, failure))
    return sorted(found, key=lambda schema: schema.name)


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


BUILT_IN_CONF = "quantbench.conf"  # quantbench's own conf tree, first on Hydra's search path


def _yaml_in(module: str, config_path: str):
    """The Traversable of `<config_path>.yaml` in a conf package, or None."""
    try:
        candidate = importlib.resources.files(module).joinpath(*f"{config_path}.yaml".split("/"))
    except (ModuleNotFoundError, TypeError):
        return None
    return candidate if candidate.is_file() else None


def is_built_in(config_path: str) -> bool:
    """Whether `precision/fp32` (a group/option path) is one of quantbench's own YAML files."""
    return _yaml_in(BUILT_IN_CONF, config_path) is not None


def config_file(config_path: str) -> str | None:
    """The file Hydra reads for `precision/torch-dynamic-int8`: quantbench's own first, then each
    plugin's conf tree in search-path order; None for a schema (it lives in the ConfigStore)."""
    for module in [BUILT_IN_CONF, *(package.module for package in config_packages())]:
        found = _yaml_in(module, config_path)
        if found is not None:
            return str(found)
    return None
