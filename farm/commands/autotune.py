"""farm autotune: the autotuning loop."""

from __future__ import annotations

import argparse

from farm.commands import options
from farm.commands.report import DEFAULT_REFRESH_S

EPILOG = """how do I tune longer?
  --rounds is the total number of rounds RUN_DIR should hold. Rerun the same command
  with a larger --rounds to continue a run (its seeds, weights and samples carry on);
  rerun it unchanged after a crash or Ctrl-C to finish it. --budget 2h stops cleanly
  after the round in progress once two hours are spent (rerun to go on).

at the end the finalists (the fastest samples, beam search with the start, accepted and
final weights, the manual schedule) are re-timed, interleaved, with 95% intervals; it
prints the best schedule (RUN_DIR/best/) and the `farm run` command that uses the handed-over
weights (RUN_DIR/weights/best.weights: tuned weights only where their beam search is
significantly faster than the start weights', else the start weights).

campaigns: several BENCHes (or `all`, the built-ins) tune ONE model on every pipeline's
samples into one RUN_DIR; best/NAME/ per pipeline. Each round has --batch-size candidates
per pipeline in all; --allocation gain (the default for a new campaign) gives them, after
2 rounds of equal shares, to the pipelines whose best still improves, each keeping its
beam search and 3 probes (8 for the round's held-out pipeline); --allocation equal gives
every pipeline the batch size. The objective: the weighted geometric mean over pipelines of
best / baseline beam-32 (--pipeline-weight BENCH=W; docs/autotuning.md). Name more
BENCHes when resuming to add pipelines, fewer to leave some out this time. Devices of
several classes (`farm devices`, CLASS) tune one model per class, each on its own devices,
into RUN_DIR/classes/CLASS/. Overnight on a farm: `farm autotune all --budget 10h --rounds
1000 --out RUN_DIR --address auto`; rerun it to go on."""


WATCH_START_S = 600  # how long --html's watcher waits for the run to start (Ray, devices)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "autotune", help="autotune the cost model for one benchmark, or a campaign of "
        "several, on your devices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Autotune Adams2019's cost model for BENCH: each round compiles "
        "--batch-size candidate schedules (candidate 0 is beam search with the accepted "
        "weights, the others random probes from the accepted and the start weights), times "
        "them on the devices and records every candidate in RUN_DIR/samples/. Then it trains "
        "a few candidate models on the earlier rounds and keeps one only if it ranks the new "
        "round's schedules better than the current weights beyond the noise.",
        epilog=EPILOG)
    p.add_argument("benchmarks", metavar="BENCH", nargs="+", help=options.BENCH_KINDS +
                   "; several (or `all`, the built-ins) make a campaign")
    options.add_out(p, "RUN_DIR", required=True, help="the run directory (created, or "
                    "resumed when it exists)")
    p.add_argument("--rounds", type=options.bounded_int("rounds"), default=1, metavar="R",
                   help="total rounds RUN_DIR should hold (default 1)")
    p.add_argument("--batch-size", type=options.bounded_int("batch_size"), default=32, metavar="N",
                   help="candidates per round and pipeline (default 32, as Halide's loop)")
    p.add_argument("--budget", type=options.duration, metavar="DURATION", help="stop after "
                   "the round in progress once this much time is spent, e.g. 45m, 2h, 1h30m")
    options.add_common(p)
    options.add_devices(p)
    options.add_compile_timeout(p)
    options.add_run_timeout(p)
    p.add_argument("--train-steps", "--epochs",
                   type=options.bounded_int("train_steps"), dest="train_steps",
                   default=32, metavar="N", help="gradient steps per candidate model trained "
                   "after each round (default 32; what Halide's trainer calls --epochs: each "
                   "is ONE step on at most 1024 schedules per pipeline, not a pass over the "
                   "samples)")
    p.add_argument("--screen", type=options.bounded_int("screen"), default=1, metavar="F",
                   help="screen the random probes of the accepted weights by the model: "
                   "autoschedule F draws for each (without generating code) and build the "
                   "ones the weights that planned the round predict fastest; beam searches "
                   "and the start weights' probes stay as drawn (default 1: no screening)")
    options.add_isolation(p)
    options.add_also_train_on(p)
    p.add_argument("--allocation", choices=("gain", "equal"),
                   help="how a campaign's rounds are split across its pipelines: gain (by "
                   "expected gain, after 2 equal rounds; the default for a new campaign) "
                   "or equal; fixed for a run (a resume keeps it)")
    p.add_argument("--pipeline-weight", metavar="BENCH=W", action="append", default=[],
                   type=options.pipeline_weight, dest="pipeline_weights",
                   help="how much a campaign's pipeline matters to you (repeatable; "
                   "default 1): gain allocation weighs its expected gain by W")
    p.add_argument("--html",
                   type=options.bounded_int("refresh_s"), nargs="?", const=DEFAULT_REFRESH_S,
                   metavar="SECONDS", help="keep the report page RUN_DIR/report/index.html "
                   "live: rewritten after every committed round (by a process of its own, "
                   "which a host device's timing pauses), reloading itself every SECONDS "
                   f"(default {DEFAULT_REFRESH_S}) in an open browser; `farm report RUN_DIR "
                   "--html --watch` does the same beside a run already going")


def main(args) -> int:
    from farm import api
    from farm.report.output import printable

    watcher = _start_watcher(args.out, args.html) if args.html else None
    try:
        s = _tune(args)
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.join(10)
    if args.html:
        print(printable(f"page:  {api.report_page(args.out)}", lines=True))
    print()
    # farm.tuning.summary.TuneSummary.lines; a resumed campaign's names are its manifest's
    print(printable("\n".join(s.lines()), lines=True))
    return 0


def _tune(args):
    from farm import api

    return api.tune(args.out, *args.benchmarks, rounds=args.rounds,
                    batch_size=args.batch_size, budget_s=args.budget, weights=args.weights,
                    parallelism=args.parallelism, target=args.target,
                    devices=tuple(args.devices or ()), address=args.address,
                    compile_timeout_s=args.compile_timeout, run_timeout_s=args.run_timeout,
                    train_steps=args.train_steps, isolation=args.isolation,
                    also_train_on=args.also_train_on, allocation=args.allocation,
                    pipeline_weights=dict(args.pipeline_weights), screen=args.screen)


def _start_watcher(out: str, refresh_s: int):
    """A process of its own that rewrites the run's page after every committed round
    (farm.workflows.reports.watch_page), from the moment the run starts."""
    import multiprocessing

    from farm.workflows.reports import watch_page

    process = multiprocessing.get_context("spawn").Process(
        target=watch_page, args=(out, None, None, refresh_s),
        kwargs={"progress": _silent, "wait_start_s": WATCH_START_S}, daemon=True,
        name="farm-report-watch")
    process.start()
    return process


def _silent(_line: str) -> None:  # the watcher's lines would break the progress display
    pass
