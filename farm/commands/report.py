"""farm report: tables and plots of a run directory."""

from __future__ import annotations

from pathlib import Path

from farm.commands import writable_dir
from farm.report import build_report, write_html, write_plots


def main(args) -> int:
    report = build_report(args.run_dir)
    print(report.text)
    out = writable_dir(args.out or str(Path(args.run_dir) / "report"))
    images = write_plots(report, out)
    print("\nplots: " + ", ".join(str(p) for p in images))
    if args.html:
        print(f"html:  {write_html(report, images, out / 'index.html')}")
    return 0
