"""farm report: tables and plots of a run directory."""

from __future__ import annotations

from farm.commands import options

DEFAULT_REFRESH_S = 30  # farm.workflows.reports.REFRESH_S (a test keeps them equal)


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
    p.add_argument("--watch",
                   type=options.bounded_int("refresh_s"), nargs="?", const=DEFAULT_REFRESH_S,
                   metavar="SECONDS", help="with --html, on a run still going: rewrite the "
                   "page after every committed round until the run stops; the open page "
                   f"reloads itself every SECONDS (default {DEFAULT_REFRESH_S}) and says it "
                   "is live")


def main(args) -> int:
    from farm import api
    from farm.errors import BadInput
    from farm.report.output import printable

    if args.watch and not args.html:
        raise BadInput("--watch rewrites the web page: give --html with it")
    for i, part in enumerate(api.report(args.run_dir, args.pipeline, args.out)):
        print(("\n" if i else "") + printable(part.text, lines=True))
        for pipeline, images in part.plots:
            print(printable("\nplots" + (f" of {pipeline}" if pipeline else "") + ": "
                            + ", ".join(str(p) for p in images), lines=True))
    if args.watch:
        api.watch_page(args.run_dir, args.pipeline, args.out, args.watch,
                       progress=lambda line: print(printable(line, lines=True), flush=True))
    elif args.html:
        page = api.report_page(args.run_dir, args.pipeline, args.out)
        print(printable(f"\npage:  {page}", lines=True))
    return 0
