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
