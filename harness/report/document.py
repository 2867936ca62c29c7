"""A tiny document model rendered to Markdown and to self-contained HTML (images inlined as base64).

Reports are built once as a list of `Section`s and rendered twice, so the Markdown and HTML versions can never
disagree about a number.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Table:
    """A table: a header row and body rows of already formatted cells.

    ``notes`` (optional, same shape as ``rows``, ``""`` for none) hold a cell's secondary text, e.g. ``n = 155``:
    Markdown prints it after the cell in parentheses, HTML below it in small type and as the cell's tooltip.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    notes: tuple[tuple[str, ...], ...] = ()

    def note(self, i: int, j: int) -> str:
        """The note of cell (row ``i``, column ``j``), ``""`` when it has none."""
        if i < len(self.notes) and j < len(self.notes[i]):
            return self.notes[i][j]
        return ""


@dataclass(frozen=True)
class Figure:
    """A PNG on disk, referenced relative to the report in Markdown and inlined in HTML."""

    path: Path
    caption: str


@dataclass(frozen=True)
class Section:
    """A titled block of paragraphs, tables and figures (rendered in that order)."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    level: int = 2


@dataclass(frozen=True)
class Document:
    title: str
    sections: tuple[Section, ...] = field(default_factory=tuple)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, base: Path) -> str:
    """Render as GitHub-flavoured Markdown; figure paths are made relative to ``base`` (the report's folder)."""
    out = [f"# {doc.title}", ""]
    for sec in doc.sections:
        out += [f"{'#' * sec.level} {sec.title}", ""]
        for para in sec.paragraphs:
            out += [para, ""]
        for table in sec.tables:
            if table.caption:
                out += [f"*{table.caption}*", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in table.header) + " |")
            out.append("|" + "|".join("---" for _ in table.header) + "|")
            for i, row in enumerate(table.rows):
                cells = [f"{c} ({table.note(i, j)})" if table.note(i, j) else c for j, c in enumerate(row)]
                out.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
            out.append("")
        for fig in sec.figures:
            rel = fig.path.relative_to(base) if fig.path.is_relative_to(base) else fig.path
            out += [f"![{fig.caption}]({rel.as_posix()})", "", f"*{fig.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


def to_html(doc: Document) -> str:
    """Render as one self-contained HTML page (no external resources)."""
    esc = html.escape
    body: list[str] = [f"<h1>{esc(doc.title)}</h1>"]
    for sec in doc.sections:
        body.append(f"<h{sec.level}>{esc(sec.title)}</h{sec.level}>")
        body += [f"<p>{_inline(p)}</p>" for p in sec.paragraphs]
        for table in sec.tables:
            head = "".join(f"<th>{esc(h)}</th>" for h in table.header)
            rows = "".join(
                "<tr>" + "".join(_html_cell(c, table.note(i, j)) for j, c in enumerate(row)) + "</tr>"
                for i, row in enumerate(table.rows)
            )
            cap = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
            body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        for fig in sec.figures:
            data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(fig.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(fig.caption)}</figcaption></figure>"
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;"
        "line-height:1.45}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.92em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
        "th{background:#f4f4f4}caption{caption-side:top;font-style:italic;text-align:left;padding-bottom:4px}"
        "td small{display:block;color:#666}code{background:#f4f4f4;padding:0 3px}"
        "img{max-width:100%;height:auto}figure{margin:1em 0}figcaption{color:#444;font-size:0.92em}"
        "h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.8em}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(doc.title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escape ``text`` for HTML, then render the Markdown the report's paragraphs use: ``**bold**``, `` `code` ``."""
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", html.escape(text)))


def _html_cell(text: str, note: str) -> str:
    if not note:
        return f"<td>{html.escape(text)}</td>"
    return f'<td title="{html.escape(note)}">{html.escape(text)}<small>{html.escape(note)}</small></td>'


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number for a table cell (``—`` for missing)."""
    if value is None:
        return "—"
    return f"{value:.{digits}f}"


def fmt_ci(value: float, low: float | None, high: float | None, digits: int = 3) -> str:
    """``value [low, high]`` or just the value."""
    if low is None or high is None:
        return fmt(value, digits)
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def rows(items: Iterable[Sequence[object]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(str(c) for c in row) for row in items)
