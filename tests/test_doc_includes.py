"""Code shown in docs/ is the code in the repository: every block marked

    <!-- include: path/from/repo/root -->
    ```lang
    ...
    ```

must equal that file, so a doc cannot drift from the example it shows.
`python tests/test_doc_includes.py` rewrites the blocks from the files after an intended change.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r"<!-- include: (?P<path>\S+) -->\n(?P<fence>```[^\n]*)\n(?P<body>.*?)^```$", re.S | re.M)


def includes(doc: Path) -> list[re.Match]:
    return list(INCLUDE.finditer(doc.read_text()))


DOCS = sorted(doc for doc in (ROOT / "docs").rglob("*.md") if includes(doc))


def test_some_doc_includes_code():
    assert any(doc.name == "plugins.md" for doc in DOCS)


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_included_blocks_equal_their_files(doc):
    for match in includes(doc):
        source = ROOT / match["path"]
        assert source.is_file(), f"{doc.name} includes {match['path']}, which does not exist"
        assert match["body"] == source.read_text(), (
            f"{doc.name}: the block from {match['path']} differs from the file; "
            "run `python tests/test_doc_includes.py` to refresh it"
        )


def refresh(doc: Path) -> None:
    def replace(match: re.Match) -> str:
        return f"<!-- include: {match['path']} -->\n{match['fence']}\n{(ROOT / match['path']).read_text()}```"

    doc.write_text(INCLUDE.sub(replace, doc.read_text()))


if __name__ == "__main__":
    for path in sorted((ROOT / "docs").rglob("*.md")):
        if includes(path):
            refresh(path)
            print(f"refreshed {path.relative_to(ROOT)}")
    sys.exit(0)
