"""Command-line overrides, checked and prepared before Hydra composes anything.

- Hydra reports an unknown option over several lines; a user who typed `precision=nf5` should get
  one line that names the valid choices.
- In a sweep, Hydra composes the sweep-level config with each swept group at its default option,
  so `-m precision=gptq,awq precision.calibration.n_samples=64` fails: the default fp32 has no
  `calibration`. A setting of a swept group is made to apply where the swept options have it.
"""

from __future__ import annotations

from quantbench.errors import QuantbenchError
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


def _assignments(arguments: list[str]):
    """(key without +/++/~ prefix, value) of each `key=value` argument; flags are left out."""
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        key, _, value = argument.partition("=")
        yield key.lstrip("+~"), value


def check_group_choices(arguments: list[str]) -> str | None:
    """A one-line error for the first unknown group option in `arguments`, else None."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if any(_adds_search_path(argument) for argument in arguments):
        return None  # options from a search path given here are unknown to the check below: Hydra reports them
    candidates = []
    for key, value in _assignments(arguments):
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


def _is_multirun(arguments: list[str]) -> bool:
    return any(argument in ("-m", "--multirun") for argument in arguments)


def _swept_groups(arguments: list[str], groups: set[str]) -> dict[str, list[str] | None]:
    """Each group swept on the command line: its listed options, or None for a sweep function."""
    swept: dict[str, list[str] | None] = {}
    for key, value in _assignments(arguments):
        if key not in groups:
            continue
        value = value.strip()
        if any(function in value for function in _SWEEP_FUNCTIONS) or "],[" in value.replace(" ", ""):
            swept[key] = None  # a sweep function, or a sweep over lists of options
        elif not value.startswith("[") and len(_values(value)) > 1:  # `[a,b]` selects both: no sweep
            swept[key] = _values(value)
    return swept


def _composable(group: str, names: list[str]) -> dict:
    """The composed node of each option; one that fails to compose is left to Hydra to report."""
    nodes = {}
    for name in names:
        try:
            nodes[name] = compose_option(group, name)
        except Exception:  # noqa: BLE001 - Hydra's own error, with its context, comes when the job composes
            continue
    return nodes


def sweep_ready_overrides(arguments: list[str]) -> list[str]:
    """`arguments` with each plain `group.key=value` of a swept group made `++group.key=value`.

    Hydra builds the sweep-level config before expanding the sweep, with every swept group at its
    default option, and rejects a setting that option lacks. `++` lets the sweep-level config take
    the setting, and each job's config gets it as its option defines it (an option without the
    setting carries it unused). A setting that no swept option has is a typo: a one-line error.
    """
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    if not _is_multirun(arguments) or any(_adds_search_path(argument) for argument in arguments):
        return arguments
    initialize_config_module(config_module="quantbench.conf", version_base="1.3")
    try:
        loader = GlobalHydra.instance().config_loader()
        swept = _swept_groups(arguments, set(loader.list_groups("")))
        targeted = {argument.partition(".")[0] for argument in arguments if "." in argument.partition("=")[0]}
        swept = {group: listed for group, listed in swept.items() if group in targeted}
        if not swept:  # the common sweep: nothing to check, nothing composed
            return arguments
        options = {
            group: listed or sorted(o for o in loader.get_group_options(group) if not is_schema_option(o))
            for group, listed in swept.items()
        }
        nodes = {group: _composable(group, names) for group, names in options.items()}
    finally:
        GlobalHydra.instance().clear()
    absent = object()
    prepared = []
    for argument in arguments:
        key, _, _ = argument.partition("=")
        group, _, setting = key.partition(".")
        if argument.startswith(("-", "+", "~")) or "=" not in argument or not setting or not nodes.get(group):
            prepared.append(argument)
            continue
        if not any(OmegaConf.select(node, setting, default=absent, throw_on_missing=False) is not absent
                   for node in nodes[group].values()):
            raise QuantbenchError(
                f"'{key}' is not a setting of any swept {group} ({', '.join(nodes[group])}); "
                f"check the name, or add a new key with +{key}"
            )
        prepared.append("++" + argument)
    return prepared
