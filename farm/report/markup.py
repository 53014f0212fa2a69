"""The report page's markup pieces: escaped text, tables that scroll in their box, and
commands with a copy button (the page's script, farm.report.samples_table.SCRIPT, copies
them)."""

from __future__ import annotations

import hashlib
import html


def list_or_empty(value) -> list:
    """`value` when it is a list, else []: a manifest's invocations are data."""
    return value if isinstance(value, list) else []


def command(text: str, what: str) -> str:
    """`text` in a box with a copy button (the page's script copies it)."""
    ident = "cmd-" + hashlib.sha1(text.encode()).hexdigest()[:12]
    return (f'<p class="note">{escape(what)}</p><div class="cmd"><code id="{ident}">'
            f'{escape(text)}</code><button class="copy" data-copy="{ident}" '
            'type="button">copy</button></div>')


def fmt(value, spec: str) -> str:
    """`value` formatted by `spec`, or "-" for None."""
    return "-" if value is None else format(value, spec)


def table(header, rows, best=None, verdict_column: int | None = None,
          text_column: int | None = None, tall: bool = False) -> str:
    """An HTML table in a box that scrolls; `text_column` holds sentences (left, wrapped);
    a `tall` one's box also scrolls down, under its header, past 28 lines or so."""
    head = "".join(f'<th{TEXT_CLASS if i == text_column else ""}>{escape(c)}</th>'
                   for i, c in enumerate(header))
    lines = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            cls = f' class="{c}"' if i == verdict_column and c in ("faster", "slower") else (
                TEXT_CLASS if i == text_column else "")
            cells.append(f"<td{cls}>{escape(c)}</td>")
        mark = ' class="best"' if best is not None and best(row) else ""
        lines.append(f"<tr{mark}>{''.join(cells)}</tr>")
    box = "scroll tall" if tall else "scroll"
    return (f'<div class="{box}"><table><thead><tr>{head}</tr></thead><tbody>'
            + "".join(lines) + "</tbody></table></div>")


TEXT_CLASS = ' class="text"'


def escape(text: object) -> str:
    """`text` as HTML text: nothing a run directory says becomes markup."""
    return html.escape(str(text))
