"""Add installed plugins' config trees to quantbench's Hydra search path.

A plugin package declares, in its own pyproject.toml,

    [project.entry-points."quantbench.configs"]
    torchao-intx = "quantbench_torchao_intx.conf"

naming a package that holds a conf tree laid out like quantbench/conf (precision/, model/, ...).
Its options then appear beside the built-in ones: `python -m quantbench precision=torchao-int3wo`.

Hydra imports every module under hydra_plugins/ when any Hydra app starts, so this one imports
nothing but Hydra's plugin base and quantbench.config.plugin_configs (importlib only): the entry
point's value is read as a string, never imported.
"""

from __future__ import annotations

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from quantbench.config.plugin_configs import config_packages


def _is_quantbench(search_path: ConfigSearchPath) -> bool:
    """Only quantbench's own app gets the plugins' options, not every Hydra app in the venv.

    Its primary config is `pkg://quantbench.conf` (compose API) or `file://.../quantbench/conf`
    (`python -m quantbench`, which Hydra resolves to the package's directory).
    """
    for element in search_path.get_path():
        path = element.path.replace("\\", "/").rstrip("/")
        if element.provider == "main" and (path == "pkg://quantbench.conf" or path.endswith("/quantbench/conf")):
            return True
    return False


class QuantbenchSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not _is_quantbench(search_path):
            return
        # Appended after quantbench's own tree: a plugin adds options, it cannot replace built-ins.
        # Sorted by name so that two plugins offering the same option resolve the same way everywhere.
        for package in config_packages():
            search_path.append(provider=f"quantbench-plugin-{package.name}", path=f"pkg://{package.module}")
