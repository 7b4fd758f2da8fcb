"""Render a report Document as one self-standing HTML page (figures linked, not embedded)."""

from __future__ import annotations

from html import escape

from quantbench.report.document import Block, Bullets, Document, Heading, Image, Paragraph, Table

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; }
th { background: #f3f3f3; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; }
figcaption { font-style: italic; color: #555; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def _inline(text: str) -> str:
    """Escape text, keeping the Markdown `code` spans the report uses."""
    pieces = escape(str(text)).split("`")
    return "".join(f"<code>{piece}</code>" if index % 2 else piece for index, piece in enumerate(pieces))


def _table(table: Table) -> str:
    numeric = table.numeric or (False,) * len(table.headers)
    head = "".join(f"<th>{_inline(header)}</th>" for header in table.headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="number">{_inline(cell)}</td>' if is_number else f"<td>{_inline(cell)}</td>"
            for cell, is_number in zip(row, numeric)
        )
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        level = min(6, block.level)
        return f"<h{level}>{_inline(block.text)}</h{level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        caption = f"<figcaption>{_inline(block.caption)}</figcaption>" if block.caption else ""
        return (
            f'<figure><img src="{escape(block.link, quote=True)}" alt="{escape(block.alt, quote=True)}">'
            f"{caption}</figure>"
        )
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(document: Document) -> str:
    body = "\n".join(_block(block) for block in document.blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(document.title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_inline(document.title)}</h1>\n{body}\n</body>\n</html>\n"
    )
