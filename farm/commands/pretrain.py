"""farm pretrain: a cost model for your devices, trained on new random pipelines."""

from __future__ import annotations

import argparse

from farm.commands import options

# farm.workflows.pretrain's values, not imported: `farm --help` builds every parser, and that
# module pulls in the trainer (test_pretrain checks the two agree)
BEAM_CHECKED = 4
PRETRAIN_COMPILE_TIMEOUT_S = 240.0
VALIDATE_ON = ("corpus",)  # farm.api's

EPILOG = f"""how long?
  Halide's recipe takes 1,024 random pipelines x 16 samples. On one 2-core host a
  pipeline costs about 50 s (its beam search dominates), so the default 256 take about
  3.5 hours; a farm divides that by its devices. --budget stops cleanly after the
  round in progress; rerun the same command to resume, or with a larger --pipelines to go
  on with new seeds.

what is judged?
  Each round's candidate models are trained on the earlier rounds and judged on the
  round's new pipelines, which they never saw ("held-out rank": the share of clearly
  ordered schedule pairs ranked right). Random pipelines add training rows; real ones
  decide: a winner is accepted only if its beam search, re-timed against the current
  weights' on {BEAM_CHECKED} (--beam-checked) of the real --validate-on pipelines (the
  next ones in turn), is not slower. At the end the accepted weights are confirmed against
  the start weights' on the next real pipelines before they become
  OUT/weights/best.weights. --validate-on random restores the old rule: the next round's
  new random pipelines, against the start weights.

then:
  farm evaluate OUT --on BENCH ...           judge them on real pipelines never seen
  farm autotune BENCH --weights OUT/weights/best.weights --out RUN_DIR   fine-tune"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="pre-train a cost model for your devices on new random pipelines",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pre-train Adams2019's cost model for a device class: each round draws "
        "new pipelines from --generator (seed by seed), compiles --per-pipeline candidates "
        "of each (beam search and random probes), times them on the devices and trains one "
        "model per device class on every round so far.",
        epilog=EPILOG)
    options.add_out(p, "DIR", required=True, help="the pre-training's run directory "
                    "(created, or resumed when it exists)")
    p.add_argument("--pipelines", type=options.bounded_int("pipelines"), default=256, metavar="N",
                   help="pipelines to train on in all (default 256; raise it later to go on)")
    p.add_argument("--per-pipeline",
                   type=options.bounded_int("per_pipeline"), default=16, metavar="S",
                   help="candidates per pipeline: beam search plus probes (default 16, as "
                   "Halide's random-pipeline loop)")
    p.add_argument("--pipelines-per-round",
                   type=options.bounded_int("pipelines_per_round"), metavar="P",
                   help="new pipelines per round (default: 4 per device, at least 8)")
    p.add_argument("--generator", metavar="BENCH", help="a generator with a seed parameter, "
                   "e.g. random:stages=12, path/to/gen.py:name or a C++ generator folder "
                   "(default: random; random:types=int for a Hexagon target)")
    p.add_argument("--beam-checked", type=options.bounded_int("pipelines_per_round"), metavar="K",
                   help="new pipelines whose beam search the beam check re-times each round "
                   f"(default {BEAM_CHECKED})")
    p.add_argument("--validate-on", nargs="+", metavar="BENCH", default=list(VALIDATE_ON),
                   help="the real pipelines that decide each update (BENCHes or suites: "
                   "corpus, a corpus family, all; default: corpus), or `random` for the "
                   "round's new random pipelines")
    p.add_argument("--budget", type=options.duration, metavar="DURATION", help="stop after "
                   "the round in progress once this much time is spent, e.g. 45m, 2h")
    options.add_common(p)
    options.add_devices(p)
    options.add_compile_timeout(p, default=PRETRAIN_COMPILE_TIMEOUT_S)
    options.add_run_timeout(p)
    p.add_argument("--train-steps",
                   type=options.bounded_int("train_steps"), default=32, metavar="N",
                   help="gradient steps per candidate model trained after each round "
                   "(default 32)")
    options.add_isolation(p)
    options.add_also_train_on(p)


def main(args) -> int:
    from farm import api
    from farm.report.output import printable

    s = api.pretrain(args.out, pipelines=args.pipelines, per_pipeline=args.per_pipeline,
                     per_round=args.pipelines_per_round, generator=args.generator,
                     beam_checked=args.beam_checked, budget_s=args.budget,
                     weights=args.weights, parallelism=args.parallelism, target=args.target,
                     devices=tuple(args.devices or ()), address=args.address,
                     compile_timeout_s=args.compile_timeout, run_timeout_s=args.run_timeout,
                     train_steps=args.train_steps, isolation=args.isolation,
                     also_train_on=args.also_train_on, validate_on=args.validate_on)
    print()
    print(printable("\n".join(s.lines()), lines=True))
    return 0
