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
    from farm.report.output import printable
    from farm.report.page import write_page
    from farm.report.text import build_report, write_plots
    from farm.store.rundir import class_dirs

    dirs = class_dirs(args.run_dir) or [Path(args.run_dir)]
    for i, run_dir in enumerate(dirs):
        report = build_report(run_dir, args.pipeline)
        print(("\n" if i else "") + printable(report.text, lines=True))
        out = _out(args.out, run_dir)
        if len(dirs) > 1 and args.out:
            out = _inside(out, run_dir.name)
        parts = [(report, out)]
        if report.manifest.campaign and not args.pipeline:
            parts = [(build_report(run_dir, p.name), _inside(out, p.name))
                     for p in report.manifest.pipelines]
        for part, folder in parts:
            images = write_plots(part, folder)
            print(printable("\nplots" + (f" of {part.pipeline}" if part.pipeline else "") + ": "
                            + ", ".join(str(p) for p in images), lines=True))
    if args.html:
        page = _out(args.out, Path(args.run_dir)) / "index.html"
        print(printable(f"\npage:  {write_page(Path(args.run_dir), page, args.pipeline)}",
                        lines=True))
    return 0


def _out(out: str | None, run_dir: Path) -> Path:
    """--out, or RUN_DIR/report: a folder of the run, which no link may take elsewhere."""
    from farm.atomic import real_dir, writable_dir
    from farm.store.rundir import RunDir

    if out:
        return writable_dir(out)
    run = RunDir(run_dir)
    return writable_dir(str(real_dir(run.report_dir, run.path)))


def _inside(out: Path, name: str) -> Path:
    """OUT/NAME for a pipeline's or a device class's plots: NAME made a safe folder name
    (farm.paths), the folder no link."""
    from farm.atomic import real_dir, writable_dir
    from farm.paths import path_name

    return writable_dir(str(real_dir(out / path_name(name), out)))
