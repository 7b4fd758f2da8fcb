"""The configuration page names every shipped option, so the docs cannot silently fall behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import quantbench

DOCS = Path(__file__).resolve().parents[1] / "docs"
CONF = Path(quantbench.__file__).parent / "conf"
GROUPS = ("model", "precision", "hardware", "dataset", "bench", "quality", "scenario", "engine")


@pytest.mark.parametrize("group", GROUPS)
def test_configuration_page_lists_every_option(group):
    page = (DOCS / "configuration.md").read_text()
    section = page.split(f"## `{group}`", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([\w.-]+)`", section))
    shipped = sorted(path.stem for path in (CONF / group).glob("*.yaml"))  # quantbench's own, not plugins'
    assert shipped, f"no options found for {group}"
    missing = [option for option in shipped if option not in documented]
    assert not missing, f"docs/configuration.md does not describe {group} options {missing}"


def test_doc_links_resolve():
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.md)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_plugin_page_lists_every_built_in_precision_schema_with_its_keys():
    # The YAML-only route to a new option of a built-in backend starts from this table.
    from dataclasses import fields

    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from quantbench.config.schema import register_configs

    register_configs()
    store = ConfigStore.instance()
    built_in = {}
    for option in store.list("precision"):
        entry = store.load(f"precision/{option}")
        if entry.provider is None:  # quantbench's own, not a plugin's
            built_in[option.removesuffix(".yaml")] = {f.name for f in fields(OmegaConf.get_type(entry.node))} - {
                "name",
                "backend",
            }
    page = (DOCS / "plugins.md").read_text()
    rows = re.finditer(r"^\| `(?P<schema>base_\w+)` \|[^|\n]*\|(?P<keys>[^|\n]*)\|$", page, re.M)
    documented = {row["schema"]: set(re.findall(r"`(\w+)`", row["keys"])) for row in rows}
    assert documented == built_in
