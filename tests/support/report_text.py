"""Reading a written report: its sections, its tables, and the figures it links."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def markdown_links(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)


class _ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def html_image_sources(text: str) -> list[str]:
    parser = _ImageSources()
    parser.feed(text)
    return parser.sources


def assert_links_resolve_to_pngs(report: Path, links: list[str]) -> None:
    assert links
    for link in links:
        target = report.parent / link
        assert target.is_file(), link
        data = target.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, link


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip()


def table_rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ][2:]


def ratio_rows(hardware_section: str) -> list[list[str]]:
    """The rows of the table of ratios against the baseline hardware (the section's second table)."""
    return table_rows(hardware_section[hardware_section.index("| Precision | Batch | Hardware |") :])
