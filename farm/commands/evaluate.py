"""farm evaluate: how a campaign's cost model transfers, measured leave-one-out."""

from __future__ import annotations

from farm.commands import options

DEFAULT_TRAIN_STEPS = 128  # farm.workflows.evaluation.TRAIN_STEPS (a test keeps them equal)
DEFAULT_RETIMES = 10  # farm.workflows.bench.DEFAULT_RETIMES (a test keeps them equal)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="does a campaign's model help a pipeline it never saw? beam-32 "
        "with models trained with and without each pipeline (leave-one-out), re-timed "
        "against the start weights",
        description="POOLED: one model trained, from the run's start weights, on the "
        "samples of every pipeline of the campaign RUN_DIR, the one it is timed on "
        "included: what the campaign's own pipelines get from its model. Each pipeline is "
        "compiled with beam search (beam 32) planned by the start weights (baseline), the "
        "pooled model, its leave-one-out model and any --weights-for, and the schedules are "
        "re-timed interleaved on one device of the run's class, each with a verdict against "
        "the baseline.",
        epilog="LEAVE-ONE-OUT: for each group of pipelines, a model trained the same way on "
        "the samples of every other group only, so it has never seen the pipeline it is "
        "timed on: what a new pipeline of the device class can expect from the campaign's "
        "model. A group is one pipeline, or pipelines left out together by default: near "
        "twins (conv3x3a16 and conv3x3a32) and the pipelines of each corpus family "
        "(leave-family-out; `farm benchmarks` lists the families); --together for others, "
        "since a model that saw one has as good as seen the other. Pooled minus "
        "leave-one-out is what training on the pipeline itself adds. The models, their "
        "training logs, the Parquet rows and a plot go to --out.")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a `farm autotune` campaign run directory (two pipelines or more); "
                   "with --on, any run directory: a pre-training, a campaign, a single run")
    p.add_argument("--on", metavar="BENCH", nargs="+",
                   help="judge RUN_DIR's handed-over weights (weights/best.weights) instead: "
                   "each BENCH (`all`: the built-ins) is built with beam 32 and the run's "
                   "start weights (baseline), its handed-over weights and any --weights-for, "
                   "and re-timed interleaved. A BENCH the run trained on is refused: the "
                   "question is how the model does on pipelines it never saw")
    p.add_argument("--generator", metavar="PATH", action="append", dest="generators",
                   default=[], help="a generator of the campaign's own (path/to/file.py, a "
                   "C++ generator's folder or file, an executable), named again; repeat for "
                   "more. The farm runs no code a run directory names by itself: only "
                   "built-ins and the generators named here, each checked against the "
                   "sha256 the run recorded before any of its code runs")
    p.add_argument("--together", metavar="A,B", action="append",
                   help="pipelines to leave out together, comma-separated; repeat for more "
                   "groups. Giving it replaces the default groups, the built-in near twins "
                   "(conv3x3a16,conv3x3a32); every pipeline in no group is left out alone")
    p.add_argument("--judge", metavar="FILE",
                   help="with --on: judge these weights instead of the handed-over ones, "
                   "labelled `judged`; e.g. RUN_DIR/weights/provisional-000027.weights, a "
                   "model the run trained and did not accept")
    p.add_argument("--weights-for", metavar="BENCH=PATH", action="append", dest="weights_for",
                   help="also time BENCH with these weights, labelled `own` (repeatable), "
                   "e.g. the best.weights of its own single-pipeline run")
    p.add_argument("--train-steps", type=options.bounded_int("train_steps"), metavar="N",
                   help=f"gradient steps of each model (default {DEFAULT_TRAIN_STEPS}, at "
                   "rate 1e-3 from the start weights: the recipe of the final-fresh-long "
                   "model `farm autotune` trains at the end of a run, so the pooled model is "
                   "what the campaign's own final training gives; each step is one step per "
                   "pipeline)")
    options.add_retimes(p, default=None, help="interleaved re-timings per schedule "
                        f"(default {DEFAULT_RETIMES}, as `farm bench`; under 5 gives no ratio "
                        "or verdict)")
    options.add_devices(p, help="devices to time on, of the run's device class (default: "
                        "every usable one of its class); each pipeline is timed on one")
    options.add_out(p, "DIR", help="where the models (weights/), the Parquet rows and the "
                    "plot go (default RUN_DIR/evaluate)")
    options.add_address(p)


def main(args) -> int:
    from farm import api
    from farm.report.output import printable

    def say(text: str = "") -> None:  # pipeline names from the run: control characters escaped
        print(printable(text, lines=True), flush=True)

    result = api.evaluate(args.run_dir, args.out, together=args.together,
                          weights_for=args.weights_for, train_steps=args.train_steps,
                          generators=args.generators, devices=args.devices,
                          address=args.address, retimes=args.retimes or DEFAULT_RETIMES,
                          on=args.on, judge=args.judge, progress=say)
    for part in ([result.table], result.models, result.summary):
        say()
        for line in part:
            say(line)
    say(f"\nrows: {result.rows_path}\nplot: {result.plot_path}")
    return 0
