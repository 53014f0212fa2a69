"""What the commands print and draw: aligned text tables and matplotlib figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


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
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
