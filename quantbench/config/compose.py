"""Hydra's view of quantbench's config tree (plugins' trees included): a group's options, one option composed.

The command-line checks (quantbench.cli.overrides), `--help`, and the parts of a job that compose
another option of a group (a calibration dataset, a reference model's precision) all read the
tree through here, so each sees what the app itself would compose.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from quantbench.config.schema import is_schema_option, register_configs


def user_options(loader: Any, group: str) -> list[str]:
    """The options of `group` a user can pick: every config source's (plugins included), no schemas."""
    return sorted(option for option in loader.get_group_options(group) if not is_schema_option(option))


@contextmanager
def config_loader() -> Iterator[Any]:
    """Hydra's config loader for quantbench's config tree; the app's own when the app is running."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    already = GlobalHydra.instance().is_initialized()
    if not already:
        initialize_config_module(config_module="quantbench.conf", version_base="1.3")
    try:
        yield GlobalHydra.instance().config_loader()
    finally:
        if not already:
            GlobalHydra.instance().clear()


def group_options(group: str) -> list[str]:
    """The options of a config group, from every config source Hydra knows (plugins included)."""
    with config_loader() as loader:
        return user_options(loader, group)


def compose_option(group: str, name: str):
    """The `<group>=<name>` config node as the app composes it (plugins' options included)."""
    from hydra import compose

    with config_loader():  # inside the app: its search path, plugins included
        return compose(config_name="config", overrides=[f"{group}={name}"])[group]
