"""`python -m quantbench --help`: Hydra's app help, listing only the options a user can pick.

Hydra renders `--help` from `hydra.help.template` (conf/hydra/help/quantbench.yaml). Its own
`$APP_CONFIG_GROUPS` lists every option in each group, the structured-config schemas
(`base_precision`, ...) included, so the template asks this resolver instead. It runs inside
Hydra's help, where Hydra's config loader (with the plugins' search path) is initialised.
`--hydra-help` is Hydra's, unchanged.
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


def register_help_resolver() -> None:
    """Idempotent: the app calls it before Hydra reads the help template."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, config_groups_text)
