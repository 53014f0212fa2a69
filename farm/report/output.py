"""What the commands print and draw: aligned text tables and matplotlib figures."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from pathlib import Path

# control characters, and lone surrogates (JSON may hold them; no terminal encodes them)
_ESCAPED = ("Cc", "Cs")
# Unicode's format characters that reorder or hide text on a terminal (bidirectional
# overrides and isolates), escaped with the control characters
_HIDING = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                    "\u2066\u2067\u2068\u2069")


def printable(text: str, lines: bool = False) -> str:
    """`text` with its control characters escaped as Python writes them (ESC as \\x1b,
    U+202E as \\u202e): names read from a run directory reach the terminal as text that
    cannot move the cursor, recolour, retitle or reorder it. `lines`: keep the line breaks
    of a text of several lines the farm composed."""
    return "".join(_escaped(c) if (unicodedata.category(c) in _ESCAPED or c in _HIDING)
                   and not (lines and c == "\n") else c for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def columns(rows: Sequence[Sequence[str]], right: bool = False) -> str:
    """Rows of cells (the first the header) as columns two spaces apart, left- or
    right-aligned; lines carry no trailing spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if right else c.ljust(w)
                               for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def pyplot():
    """matplotlib.pyplot on the file-only backend (no display on farm hosts)."""
    import matplotlib

    matplotlib.use("Agg")
    # names come from run directories: a `$` in one is text, not mathtext to parse
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Save `fig` at `path` atomically: drawn into a new temporary file and renamed, so a
    symlink planted at `path` is replaced, never written through."""
    from farm import atomic

    fig.tight_layout()
    try:
        atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=110,
                                                        format=path.suffix.lstrip(".")))
    finally:
        pyplot().close(fig)
    return path
