"""farm export: a run's samples as Halide .sample and .schedule.h files."""

from __future__ import annotations

from farm.commands import options


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a run's samples as Halide .sample files with "
                       "their .schedule.h",
                       # argparse would show --out as optional: it shares a required group
                       # with the hidden old spelling, `farm export RUN_DIR DIR`
                       usage="%(prog)s [-h] RUN_DIR --out DIR")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a `farm autotune` run directory")
    options.add_out(p, "DIR", required=True, old_positional=True, help="where the .sample "
                    "and .schedule.h files go (created if needed)")


def main(args) -> int:
    from farm import api

    n, out = api.export(args.run_dir, args.out)
    print(f"wrote {n} .sample files (with their .schedule.h) to {out}; e.g. "
          f"`ls {out}/*.sample | adams2019_retrain_cost_model ...`")
    return 0
