"""`python -m quantbench --help`: Hydra's app help, listing only the options a user can pick.

Hydra renders `--help` from `hydra.help.template` (conf/hydra/help/quantbench.yaml). Its own
`$APP_CONFIG_GROUPS` lists every option in each group, the structured-config schemas
(`base_precision`, ...) included, so the template asks this resolver instead. It runs inside
Hydra's help, where Hydra's config loader (with the plugins' search path) is initialised.
`--hydra-help` is Hydra's, unchanged.

Hydra composes the help template in every run, not only for `--help`, and omegaconf resolves it
whenever a later config merges into `hydra.help` (an interpolated node it merges into is
dereferenced): once per composition, and a sweep composes each job's config twice. Listing every
group reads every option file (~1 s on a 2-core machine), so a run that is not printing its help
registers a resolver that lists nothing; the template is never shown there.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from quantbench.config.compose import config_loader, user_options

RESOLVER = "quantbench.config_groups"


def config_groups_text() -> str:
    """`group: option, option, ...` for every group outside hydra/, nested groups included."""
    with config_loader() as loader:
        lines = []
        pending = [group for group in loader.list_groups("") if group != "hydra"]
        while pending:
            group = pending.pop()
            options = user_options(loader, group)
            if options:
                lines.append(f"{group}: {', '.join(options)}")
            pending.extend(f"{group}/{child}" for child in loader.list_groups(group))
        return "\n".join(sorted(lines))


def _not_printed() -> str:
    return ""


def asks_for_help(argv: list[str]) -> bool:
    """Whether Hydra will print the app's help for this command line (`--help`, `-h`)."""
    from hydra._internal.utils import get_args_parser  # the parser hydra.main runs on the same argv

    try:
        return bool(get_args_parser().parse_known_args(argv)[0].help)
    except SystemExit:  # a malformed command line: Hydra says so itself, with its usage
        return False


def register_help_resolver(argv: list[str] | None = None) -> None:
    """The app calls it before Hydra composes anything, with its command line; None: the listing
    is always computed (a caller that renders the help itself)."""
    rendering = argv is None or asks_for_help(argv)
    OmegaConf.register_new_resolver(RESOLVER, config_groups_text if rendering else _not_printed, replace=True)
