"""farm report: tables and plots of a run directory."""

from __future__ import annotations

from farm.commands import options


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="summarize a run directory: a table per round, the "
                       "final re-timing, plots")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `farm autotune` run directory")
    options.add_out(p, "DIR", help="where the PNG plots go (default RUN_DIR/report)")
    p.add_argument("--html", action="store_true", help="also write an index.html with them")


def main(args) -> int:
    from farm.commands import writable_dir
    from farm.report import build_report, write_html, write_plots
    from farm.rundir import RunDir

    report = build_report(args.run_dir)
    print(report.text)
    out = writable_dir(args.out or str(RunDir(args.run_dir).report_dir))
    images = write_plots(report, out)
    print("\nplots: " + ", ".join(str(p) for p in images))
    if args.html:
        print(f"html:  {write_html(report, images, out / 'index.html')}")
    return 0
