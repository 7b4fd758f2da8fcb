"""Render a report Document as GitHub-flavoured Markdown."""

from __future__ import annotations

from quantbench.report.document import Block, Bullets, Document, Heading, Image, Paragraph, Table


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> str:
    numeric = table.numeric or (False,) * len(table.headers)
    lines = [
        "| " + " | ".join(_cell(header) for header in table.headers) + " |",
        "| " + " | ".join("---:" if is_number else "---" for is_number in numeric) + " |",
    ]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        image = f"![{block.alt}]({block.link})"
        return f"{image}\n\n*{block.caption}*" if block.caption else image
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(document: Document) -> str:
    parts = [f"# {document.title}", *(_block(block) for block in document.blocks)]
    return "\n\n".join(parts) + "\n"
