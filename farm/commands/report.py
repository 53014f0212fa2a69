"""farm report: tables and plots of a run directory."""

from __future__ import annotations

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
    from farm import api
    from farm.report.output import printable

    for i, part in enumerate(api.report(args.run_dir, args.pipeline, args.out)):
        print(("\n" if i else "") + printable(part.text, lines=True))
        for pipeline, images in part.plots:
            print(printable("\nplots" + (f" of {pipeline}" if pipeline else "") + ": "
                            + ", ".join(str(p) for p in images), lines=True))
    if args.html:
        page = api.report_page(args.run_dir, args.pipeline, args.out)
        print(printable(f"\npage:  {page}", lines=True))
    return 0
