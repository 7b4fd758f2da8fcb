"""Command-line overrides, read with Hydra's own grammar and checked before Hydra composes anything.

Hydra reports these mistakes over several lines, and advises appending a misspelt key with `+`;
quantbench answers each with one line that says what to do:
- an override the grammar cannot read;
- an unknown group option (`precision=nf5`): the closest valid one, then all of them, without the
  schemas (`base_precision`);
- an option from a plugin's conf tree that does not compose (a misspelt key in its YAML file): the
  key, the file and the closest valid key. quantbench's own options are composed by its tests, so
  only plugins' options are composed here, each once;
- a misspelt key or group (`precison=fp16`, `bench.max_new_tokenz=8`): the closest valid one;
- a renamed key (schema.RENAMED_KEYS): its new name;
- a setting of a swept group. Hydra composes the sweep-level config with every swept group at its
  default option, so `-m precision=gptq,awq precision.calibration.n_samples=64` fails (fp32 has no
  `calibration`). The setting is checked against the swept options and passed on as `++`, so each
  job's option takes it where it has it.

One pass, cheap where it can be: Hydra's config loader is initialised once and only when an
override names something in the app's config; options are listed only for the groups named; a
config is composed only when a key is set (one with the chosen options; a swept group's other
options only when the first lacks the setting).
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Override, OverrideType, QuotedString, ValueType
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from quantbench.config.compose import config_loader, user_options
from quantbench.config.keys import absent_part, composition_error, describe
from quantbench.config.plugin_configs import is_built_in
from quantbench.config.schema import RENAMED_KEYS
from quantbench.errors import QuantbenchError, unknown_choice

# Flags under which the overrides are not checked here: another config source (its options are
# unknown to these checks), a rerun of a pickled config, or shell completion's own arguments.
_UNCHECKED_FLAGS = ("config_path", "config_name", "config_dir", "experimental_rerun", "shell_completion")
_SEARCH_PATH_KEY = "hydra.searchpath"  # set on the command line: another config source too


def parse_overrides(texts: list[str]) -> list[Override]:
    """Hydra's reading of `texts`; an override its grammar rejects is a one-line QuantbenchError."""
    try:
        return OverridesParser.create().parse_overrides(texts)
    except OverrideParseException as error:
        raise QuantbenchError(_one_line_parse_error(error)) from error


def _one_line_parse_error(error: OverrideParseException) -> str:
    details, guide = [], ""
    for line in error.message.splitlines():
        text = line.strip()
        if text.startswith("See "):
            guide = text.removeprefix("See ").removesuffix(" for details")
        elif text.startswith("LexerNoViableAltException"):
            details.append("a character the grammar does not allow (quote the value: key='...')")
        elif text and not text.startswith("Error parsing override") and set(text) != {"^"}:
            details.append(text)
    guide = f" (grammar: {guide})" if guide else ""
    return f"cannot read the override '{error.override}': {'; '.join(details)}{guide}"


def prepare_arguments(argv: list[str]) -> list[str]:
    """`argv` (Hydra's command line) checked, with settings of swept groups made `++` and a glob
    over a group's options spelt out; a mistake is a one-line QuantbenchError."""
    from hydra._internal.utils import get_args_parser  # the parser hydra.main runs on the same argv

    args = get_args_parser().parse_args(argv)
    if any(getattr(args, flag) for flag in _UNCHECKED_FLAGS):
        return argv
    overrides = parse_overrides(args.overrides)
    if any(o.key_or_group == _SEARCH_PATH_KEY for o in overrides):
        return argv  # options from another config source are unknown to the checks: Hydra reports
    for override in overrides:
        _check_not_renamed(override)
    multirun = args.multirun or any(
        o.key_or_group == "hydra.mode" and str(o.value()).upper() == "MULTIRUN" for o in overrides
    )
    user = [o for o in overrides if not o.is_hydra_override()]
    if not multirun:
        _check_no_sweep(user)
    if not user:
        return argv  # `python -m quantbench`, `--help`, hydra.* only: nothing to read
    with config_loader() as loader:
        replacements = _CommandLine(loader, user, multirun).check()
    return [replacements.get(argument, argument) for argument in argv]


def _check_not_renamed(override: Override) -> None:
    key = override.key_or_group
    for old, new in RENAMED_KEYS.items():
        if key == old or key.startswith(old + "."):
            raise QuantbenchError(f"'{key}' was renamed to '{new}{key[len(old) :]}'")


def _check_no_sweep(overrides: list[Override]) -> None:
    for override in overrides:
        if override.is_sweep_override():
            raise QuantbenchError(
                f"'{override.input_line}' is a sweep: add -m to run one job per value, "
                "or quote a value that holds commas (key='a,b')"
            )


def _option_names(value: Any) -> list[str]:
    """The option names in one parsed group value: `a`, `'a'` or `[a,b]`; none for null."""
    if isinstance(value, list):
        return [name for item in value for name in _option_names(item)]
    if isinstance(value, QuotedString):
        return [value.text]
    return [] if value is None else [str(value)]


class _CommandLine:
    """The user's overrides against the app's config groups and, where a key is set, its configs."""

    def __init__(self, loader: Any, overrides: list[Override], multirun: bool) -> None:
        self.loader = loader
        self.overrides = overrides
        self.multirun = multirun
        self._groups: dict[str, list[str]] = {}  # parent group -> its subgroups, listed once
        self._options: dict[str, list[str]] = {}  # group -> its options, listed once
        self._from_plugins: list[str] = []  # `group=selection` choices that name a plugin's option

    def is_group(self, key: str) -> bool:
        parent, _, name = key.rpartition("/")
        if parent not in self._groups:
            self._groups[parent] = list(self.loader.list_groups(parent))
        return name in self._groups[parent]

    def options(self, group: str) -> list[str]:
        if group not in self._options:
            self._options[group] = user_options(self.loader, group)
        return self._options[group]

    def check(self) -> dict[str, str]:
        """{argument: the argument Hydra gets instead}; raises QuantbenchError for a mistake."""
        replacements: dict[str, str] = {}
        selections: dict[str, list[str]] = {}  # group -> the selection of each job (a sweep's values)
        swept: set[str] = set()
        for override in self.overrides:
            if self.is_group(override.key_or_group) and override.type in (OverrideType.CHANGE, OverrideType.ADD):
                selections[override.key_or_group] = self._selections(override)
                if self.multirun and override.is_sweep_override():
                    swept.add(override.key_or_group)
                if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
                    listed = ",".join(selections[override.key_or_group])
                    replacements[override.input_line] = f"{override.get_key_element()}={listed}"
        for choice in dict.fromkeys(self._from_plugins):
            self._check_composes(choice)
        added = [o.key_or_group for o in self.overrides if o.is_add() or o.is_force_add()]
        settings = [
            o
            for o in self.overrides
            if o.type == OverrideType.CHANGE
            and not self.is_group(o.key_or_group)
            and not any(o.key_or_group == key or o.key_or_group.startswith(key + ".") for key in added)
        ]
        if not settings:
            return replacements  # group choices only: nothing composed
        base = self._compose(self._base_overrides(selections, {}))
        if base is None:
            return replacements
        for setting in settings:
            key = setting.key_or_group
            group = key.partition(".")[0]
            if group in swept and selections[group]:
                self._check_swept_setting(setting, group, base, selections)
                replacements[setting.input_line] = "++" + setting.input_line
                continue
            place = absent_part(base, key)
            if place is not None:
                subject = "unknown key or group" if not place.parent else "unknown key"
                if place.null:
                    subject = "cannot set"
                raise QuantbenchError(f"{subject} '{key}'; {describe(key, [place], self._top_level())}")
        return replacements

    def _selections(self, override: Override) -> list[str]:
        """What each job selects in the group (an option, or `[a,b]` for a list); unknown options are errors."""
        group = override.key_or_group
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            glob: Glob = override.value()
            matched = glob.filter(self.options(group))
            if not matched:
                raise QuantbenchError(
                    f"'{override.input_line}' matches no {group} option; choose from: {', '.join(self.options(group))}"
                )
            self._from_plugins += [f"{group}={name}" for name in matched if not is_built_in(f"{group}/{name}")]
            return matched
        if override.value_type == ValueType.INTERVAL_SWEEP:
            return []  # not a choice of options: Hydra reports it
        values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
        if override.is_sweep_override():
            texts = list(override.sweep_string_iterator())
        else:
            texts = [override.get_value_element_as_str()]
        for value, text in zip(values, texts):
            names = _option_names(value)
            for name in names:
                if name not in self.options(group):
                    raise QuantbenchError(unknown_choice(group, name, self.options(group)))
            if not all(is_built_in(f"{group}/{name}") for name in names):
                self._from_plugins.append(f"{group}={text}")
        return texts

    def _base_overrides(self, selections: dict[str, list[str]], chosen: dict[str, str]) -> list[str]:
        """The group choices of one job's config: each group at its first (or `chosen`) selection.

        Keys set, added or deleted are left out: a setting is checked against this config, and an
        addition or deletion Hydra cannot make is Hydra's to report.
        """
        overrides = []
        for override in self.overrides:
            key = override.key_or_group
            if key in selections and override.type in (OverrideType.CHANGE, OverrideType.ADD):
                if selections[key]:
                    overrides.append(f"{override.get_key_element()}={chosen.get(key, selections[key][0])}")
            elif override.is_delete() and self.is_group(key):
                overrides.append(override.input_line)
        return overrides

    def _check_composes(self, choice: str) -> None:
        """A plugin's option (`precision=my-option`) composes; else one line naming the key and the file."""
        from hydra import compose

        try:
            compose(config_name="config", overrides=[choice])
        except (HydraException, OmegaConfBaseException) as error:
            raise QuantbenchError(composition_error(error, choice)) from error

    def _compose(self, overrides: list[str]) -> DictConfig | None:
        """The composed config; None where it does not compose (Hydra reports why, in its own words)."""
        from hydra import compose

        try:
            return compose(config_name="config", overrides=overrides)
        except (HydraException, OmegaConfBaseException):
            return None

    def _check_swept_setting(
        self, setting: Override, group: str, base: DictConfig, selections: dict[str, list[str]]
    ) -> None:
        """A setting of a swept group must be a key of at least one swept option."""
        places = []
        for position, selection in enumerate(selections[group]):
            config = base if position == 0 else self._compose(self._base_overrides(selections, {group: selection}))
            if config is None:
                continue  # an option that does not compose: Hydra reports it when its job composes
            place = absent_part(config, setting.key_or_group)
            if place is None:
                return
            places.append(place)
        if places:
            raise QuantbenchError(
                f"'{setting.key_or_group}' is not a setting of any swept {group} ({', '.join(selections[group])}); "
                + describe(setting.key_or_group, places, [])
            )

    def _top_level(self) -> list[str]:
        return [group for group in self.loader.list_groups("") if group != "hydra"]
