"""farm import: the samples Halide's own autotuning loop measured, as a run directory."""

from __future__ import annotations

import argparse

from farm.commands import options

NAME = "import"

EPILOG = """what it reads:
  Halide's adams2019_autotune_loop.sh (and scripts built on it) leaves SAMPLES_DIR/batch_B_I/N/
  with PIPELINE_batch_B_sample_N.sample, its .schedule.h and bench.txt. Each .sample becomes
  one row: its runtime (RunGen's seconds, kept in ms), featurization and schedule text, and a
  pipeline id told apart by features (the loop gives every pipeline id 0, Halide issue 7086).
  Each batch is a round. Files that are not samples are listed and skipped.

then:
  farm report RUN_DIR, farm export RUN_DIR; farm models promote RUN_DIR (with --weights: the
  weights the loop trained); farm autotune BENCH --also-train-on RUN_DIR trains on its rows
  (on devices of the same class)."""


def add_parser(sub) -> None:
    p = sub.add_parser(NAME, help="turn the samples folder of Halide's own autotuning loop "
                       "into a run directory", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples_dir", metavar="SAMPLES_DIR", help="the loop's samples folder")
    options.add_out(p, "RUN_DIR", required=True, help="the run directory to make (new)")
    p.add_argument("--class", dest="device_class", metavar="C", required=True,
                   help="the device class the samples were timed on, as `farm devices` "
                   "names it (e.g. host-amd-epyc)")
    p.add_argument("--benchmark", metavar="NAME", help="the pipeline's name, for samples "
                   "whose file names do not say it (default: from each file's name)")
    p.add_argument("--weights", metavar="FILE", help="the weights the loop trained: handed "
                   "over by the run (weights/best.weights), for `farm models promote`")
    p.add_argument("--target", metavar="T", help="the Halide target the loop compiled for "
                   "(recorded only; default unknown)")


def main(args) -> int:
    from farm.report.output import printable
    from farm.workflows.import_loop import import_loop

    s = import_loop(args.samples_dir, args.out, args.device_class, args.benchmark,
                    args.weights, args.target)
    for path, why in s.skipped:
        print(printable(f"skipped {path}: {why}"))
    each = ", ".join(f"{n} ({k} rows)" for n, k in sorted(s.pipelines.items()))
    print(f"imported {s.rows} samples of {len(s.pipelines)} pipeline(s) in {s.rounds} "
          f"batches into {s.run}: {each}" + (f"; {len(s.skipped)} files skipped"
                                             if s.skipped else ""))
    if s.weights:
        print(f"handed-over weights: {s.run / 'weights' / 'best.weights'} (from {s.weights}); "
              f"`farm models promote {s.run}` makes them class {args.device_class}'s model")
    return 0
