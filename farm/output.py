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
