"""Check config-group choices on the command line before Hydra composes anything.

Hydra reports an unknown option over several lines; a user who typed `precision=nf5` should get
one line that names the valid choices.
"""

from __future__ import annotations

from quantbench.schema import is_schema_option

_SWEEP_FUNCTIONS = ("glob(", "range(", "choice(", "interval(", "sort(", "shuffle(", "tag(")


def _values(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [value.strip() for value in text.split(",") if value.strip()]


def group_options(group: str) -> list[str]:
    """The options of a config group, from every config source Hydra knows (plugins included)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    already = GlobalHydra.instance().is_initialized()
    if not already:
        initialize_config_module(config_module="quantbench.conf", version_base="1.3")
    try:
        loader = GlobalHydra.instance().config_loader()
        return sorted(option for option in loader.get_group_options(group) if not is_schema_option(option))
    finally:
        if not already:
            GlobalHydra.instance().clear()


def _adds_search_path(argument: str) -> bool:
    return argument.lstrip("+").startswith("hydra.searchpath") or argument.split("=")[0] in ("-cd", "--config-dir")


def compose_option(group: str, name: str):
    """The `<group>=<name>` config node as the app composes it (plugins' options included)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from quantbench.schema import register_configs

    register_configs()
    overrides = [f"{group}={name}"]
    if GlobalHydra.instance().is_initialized():  # inside the app: its search path, plugins included
        return compose(config_name="config", overrides=overrides)[group]
    with initialize_config_module(config_module="quantbench.conf", version_base=None):
        return compose(config_name="config", overrides=overrides)[group]


def check_group_choices(arguments: list[str]) -> str | None:
    """A one-line error for the first unknown group option in `arguments`, else None."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if any(_adds_search_path(argument) for argument in arguments):
        return None  # options from a search path given here are unknown to the check below: Hydra reports them
    candidates = []
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        key, _, value = argument.partition("=")
        key = key.lstrip("+~")
        if "." in key or "/" in key or key.startswith("hydra") or any(f in value for f in _SWEEP_FUNCTIONS):
            continue
        candidates.append((key, _values(value)))
    if not candidates:
        return None
    initialize_config_module(config_module="quantbench.conf", version_base="1.3")
    try:
        loader = GlobalHydra.instance().config_loader()
        groups = set(loader.list_groups(""))
        for key, values in candidates:
            if key not in groups:
                continue
            options = sorted(option for option in loader.get_group_options(key) if not is_schema_option(option))
            for value in values:
                if value not in options and value != "null":
                    return f"unknown {key} '{value}'; choose one of: {', '.join(options)}"
    finally:
        GlobalHydra.instance().clear()
    return None
