"""The report page of big runs: its size (the goal: under 5 MB), how many sample rows it
holds of how many, and how long it takes to write.

    python tests/perf/report_page.py RUN_DIR [RUN_DIR ...]

It reads and draws (CPU work): not beside a timing.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from farm.report.page import PAGE_LIMIT, write_page
from farm.store.rundir import RunDir, class_dirs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    args = ap.parse_args()
    print(f"{'run':<40} {'samples':>8} {'in table':>9} {'images':>7} {'MB':>6} "
          f"{'limit MB':>9} {'write s':>8}")
    for run in args.runs:
        total = sum(RunDir(d).samples.read(["round"]).num_rows
                    for d in (class_dirs(run) or [run]))
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            page = write_page(run, Path(tmp) / "index.html")
            took = time.perf_counter() - started
            text = page.read_text()
        shown = sum(len(json.loads(m.replace("\\u003c", "<"))["rows"]) for m in re.findall(
            r'class="samples-data">(.*?)</script>', text, re.S))
        print(f"{str(run)[-40:]:<40} {total:>8} {shown:>9} {text.count('<img '):>7} "
              f"{len(text.encode()) / 1e6:>6.2f} {PAGE_LIMIT / 1e6:>9.2f} {took:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
