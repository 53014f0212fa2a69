"""farm report: tables and plots of a run directory."""

from __future__ import annotations

from pathlib import Path

from farm.commands import options


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="summarize a run directory: a table per round, the "
                       "final re-timing, plots")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `farm autotune` run directory (of "
                   "several device classes: each class's, in turn)")
    p.add_argument("--pipeline", metavar="NAME", help="a campaign's pipeline: its rounds, "
                   "plots and final re-timing (default: the campaign, and plots per pipeline "
                   "in DIR/NAME/)")
    options.add_out(p, "DIR", help="where the PNG plots go (default RUN_DIR/report)")
    p.add_argument("--html", action="store_true", help="also write DIR/index.html: the whole "
                   "report as one self-contained web page (tables, plots, verdicts; a "
                   "section per pipeline and device class) to open in a browser or mail")


def main(args) -> int:
    from farm.atomic import writable_dir
    from farm.report import build_report, write_plots
    from farm.report_page import write_page
    from farm.rundir import RunDir, class_dirs

    dirs = class_dirs(args.run_dir) or [Path(args.run_dir)]
    for i, run_dir in enumerate(dirs):
        report = build_report(run_dir, args.pipeline)
        print(("\n" if i else "") + report.text)
        out = writable_dir(args.out or str(RunDir(run_dir).report_dir))
        if len(dirs) > 1 and args.out:
            out = writable_dir(str(out / run_dir.name))
        parts = [(report, out)]
        if report.manifest.campaign and not args.pipeline:
            parts = [(build_report(run_dir, p.name), writable_dir(str(out / p.name)))
                     for p in report.manifest.pipelines]
        for part, folder in parts:
            images = write_plots(part, folder)
            print("\nplots" + (f" of {part.pipeline}" if part.pipeline else "") + ": "
                  + ", ".join(str(p) for p in images))
    if args.html:
        root = Path(args.run_dir)
        page = Path(args.out) if args.out else RunDir(root).report_dir
        print(f"\npage:  {write_page(root, writable_dir(str(page)) / 'index.html', args.pipeline)}")
    return 0
