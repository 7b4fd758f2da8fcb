"""`python -m quantbench.cli.listing` / `quantbench list`: what is installed and whether it works here.

For every registered backend, family and dataset: its package and version, and whether it is
usable on this machine (and if not, why); then the backend x family matrix with the reason for
every unsupported cell. A plugin that fails to import is shown with its error; the others still list.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from quantbench.config import registry
from quantbench.errors import QuantbenchError

PLURAL = {"backend": "backends", "family": "families", "dataset": "datasets"}


def _usable(plugin: registry.Plugin, device: Any) -> tuple[Any, str]:
    """(the loaded plugin or None, 'yes' or the reason it is not usable)."""
    try:
        loaded = plugin.load()
    except QuantbenchError as error:
        return None, f"no: {error}"
    check = getattr(loaded, "unavailable_reason", None)
    reason = check(device) if check and device is not None else None
    return loaded, "yes" if reason is None else f"no: {reason}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantbench list", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from quantbench.runtime.device import resolve_device

    console = Console() if sys.stdout.isatty() else Console(width=200)
    try:
        device = resolve_device(args.device)
    except QuantbenchError as error:
        print(f"quantbench list: {error}", file=sys.stderr)
        return 2
    console.print(f"device: {device.type} ({device.name})")

    loaded: dict[str, dict[str, Any]] = {}
    for group in (registry.BACKENDS_GROUP, registry.FAMILIES_GROUP, registry.DATASETS_GROUP):
        try:
            reg = registry.registry(group)
        except QuantbenchError as error:  # a name two packages register: nothing to list until one goes
            print(f"quantbench list: {error}", file=sys.stderr)
            return 2
        table = Table(title=f"{PLURAL[reg.kind]} ({group})")
        for header in ("name", "package", "version", "usable here", "description"):
            table.add_column(header, overflow="fold")
        loaded[group] = {}
        for plugin in reg.plugins():
            instance, usable = _usable(plugin, device)
            loaded[group][plugin.name] = instance
            description = getattr(instance, "description", "") if instance is not None else ""
            table.add_row(
                plugin.name,
                plugin.package,
                plugin.version,
                usable,
                description,
                style=None if usable == "yes" else "yellow",
            )
        console.print(table)

    matrix = Table(title="backend x family (ok, or why not)")
    families = {name: family for name, family in loaded[registry.FAMILIES_GROUP].items() if family is not None}
    matrix.add_column("backend")
    for name in families:
        matrix.add_column(name, overflow="fold")
    for name, backend in loaded[registry.BACKENDS_GROUP].items():
        if backend is None:
            matrix.add_row(name, *["plugin failed to load"] * len(families))
            continue
        # A backend that cannot run on this device (no GPU, too old a GPU, a missing package)
        # says so in every cell, with the same reason its skipped rows give.
        check = getattr(backend, "unavailable_reason", None)
        unavailable = check(device) if check else None
        cells = [unavailable or backend.unsupported_reason(family, None) or "ok" for family in families.values()]
        matrix.add_row(name, *cells)
    console.print(matrix)
    console.print(plugin_config_table())
    return 0


def plugin_config_table():
    """The config options plugins add (entry-point group quantbench.configs): precision=..., model=..."""
    from rich.table import Table

    from quantbench.config.plugin_configs import CONFIGS_GROUP, config_options, config_packages

    table = Table(title=f"config options from plugins ({CONFIGS_GROUP})")
    for header in ("name", "package", "version", "options"):
        table.add_column(header, overflow="fold")
    for package in config_packages():
        try:
            options = ", ".join(config_options(package.module)) or "(no YAML found)"
        except (ImportError, OSError) as error:  # a broken plugin is shown, the others still list
            options = f"cannot read {package.module}: {error}"
        table.add_row(package.name, package.distribution, package.version, options)
    return table


if __name__ == "__main__":
    sys.exit(main())
