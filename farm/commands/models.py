"""farm models: each device class's models, and which one the commands use."""

from __future__ import annotations

import argparse

from farm.commands import options
from farm.report.output import columns, printable

HEADER = ("CLASS", "CURRENT", "MODEL", "PROMOTED (UTC)", "KIND", "ROUNDS", "SAMPLES",
          "EVIDENCE (UNSEEN PIPELINES)", "SOURCE")

EPILOG = """the registry:
  Each device class (as `farm devices` names it) has a current model: a new `farm run`,
  `farm autotune`, `farm pretrain` or `farm bench` without --weights starts from it, and
  says so in its first line (--weights baseline: Halide's own weights). A resumed run keeps
  the start weights it began with. `farm models promote RUN_DIR` makes a run's handed-over
  weights (RUN_DIR/weights/best.weights) its class's current model. A model meant for the
  class's other pipelines is judged on them first: without `farm evaluate RUN_DIR --on`
  rows of those weights, promote runs that judgement itself on 4 corpus pipelines of
  families the run did not tune (minutes; --confirm-on names others), and refuses a model
  significantly slower on any of them (--force promotes it anyway, unjudged).

  The registry is a folder, FARM_MODELS_DIR (by default ~/.local/share/halide-farm/models),
  that may sit on a shared file system: every write is atomic."""


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list each device class's models, or promote a run's "
                       "weights to its class's current model", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--class", dest="device_class", metavar="C",
                   help="only class C (as `farm devices` names it)")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION",
                            help="promote (without ACTION: list the models)")
    m = msub.add_parser("promote", help="make RUN_DIR's handed-over weights the current model "
                        "of its device class")
    m.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (`farm autotune`, "
                   "`farm pretrain` or `farm import --out`)")
    m.add_argument("--class", dest="promote_class", metavar="C",
                   help="the class to promote for: the run's own (needed for a run over "
                   "several classes; another class's is refused)")
    m.add_argument("--force", action="store_true",
                   help="promote without judging it, and even when the run's evidence (its "
                   "`farm evaluate` rows) shows the model significantly slower on a pipeline "
                   "it never saw")
    m.add_argument("--confirm-on", metavar="BENCH", nargs="+", default=[],
                   help="a run without `farm evaluate --on` rows of its handed-over weights "
                   "is judged first on pipelines it never trained on (beam 32 against its "
                   "start weights, 10 interleaved re-timings: `farm evaluate RUN_DIR --on`): "
                   "these (default: 4 corpus pipelines of families it did not tune)")
    options.add_devices(m, help="devices of the run's class to judge on (default: every "
                        "usable one of the class)")
    options.add_address(m)
    t = msub.add_parser(
        "train", help="train a model for a device class from its real work, judged "
        "leave-family-out, and register it with its evidence",
        description="Pools the rows of the class's registered runs (campaigns, single "
        "runs, imports; pre-trainings on random pipelines are left out) and of each "
        "--from RUN_DIR; trains --seeds models from Halide's baseline weights (seed 0 on "
        "every row, seed s on 80% of each pipeline's rows drawn with s) and their mean "
        "(the soup); judges each leave-family-out: for each group of pipelines (a corpus "
        "family, near twins, else one pipeline), a model trained without the group, its "
        "pipelines built with beam 32 and re-timed interleaved against the baseline. The "
        "candidate slower on the fewest unseen pipelines, then fastest in geometric mean, "
        "is trained on every row and registered; it becomes the class's current model when "
        "it is significantly slower on none (else `farm models promote DIR --force` makes "
        "it current).")
    t.add_argument("--class", dest="train_class", metavar="C", required=True,
                   help="the device class (as `farm devices` names it)")
    t.add_argument("--from", dest="from_runs", metavar="RUN_DIR", nargs="+", action="extend",
                   default=[], help="runs of the class to train on as well (campaigns, "
                   "single runs, `farm import --out` folders)")
    t.add_argument("--seeds", type=options.bounded_int("seeds"), default=3, metavar="N",
                   help="models trained per group of pipelines, one per seed (default 3; the "
                   "soup is their mean)")
    options.add_retimes(t, default=10, help="interleaved re-timings per schedule "
                        "(default 10)")
    options.add_devices(t, help="devices of the class to time on (default: every usable "
                        "one of the class)")
    options.add_out(t, "DIR", required=True, help="where the models, the rows of each "
                    "pipeline (kept: a rerun resumes), validation.parquet and evidence.json "
                    "go")
    options.add_address(t)


def main(args) -> int:
    from farm.store.registry import Registry

    registry = Registry()
    if args.models_command == "train":
        return _train(args)
    if args.models_command == "promote":
        from farm.workflows.models import promote, to_confirm

        cls = args.promote_class or args.device_class
        todo = None if args.force else to_confirm(args.run_dir, cls, args.confirm_on)
        if todo is not None:
            _confirm(args, *todo)
        model = promote(args.run_dir, cls, registry, force=args.force)
        r = model.record
        # a record is a run's data: its text reaches the terminal escaped
        print(printable(f"class {r.device_class}: current model {r.sha256[:16]}, from "
                        f"{r.describe()}"))
        print(printable(f"a new run on class {r.device_class} without --weights starts "
                        f"from it ({model.weights_path})"))
        return 0
    classes = [args.device_class] if args.device_class else registry.classes()
    rows = [(m.record.device_class, "*" if m.current else "", m.record.sha256[:16],
             m.record.promoted_at[:19].replace("T", " "), m.record.kind or "-",
             str(m.record.rounds), str(m.record.samples), _evidence(m.record),
             m.record.source)
            for c in classes for m in registry.models(c)]
    if not rows:
        print(f"no model promoted yet in {registry.root}" + (
            f" for class {args.device_class}" if args.device_class else "")
            + ": `farm models promote RUN_DIR` adds one")
        return 0
    # a record is a run's data: each cell escaped before the columns are measured
    print(columns([HEADER, *[tuple(printable(c) for c in row) for row in rows]]))
    for c in classes:
        current = next((m for m in registry.models(c) if m.current), None)
        for line in (current.record.verdicts if current else []):
            print(printable(f"{c}: {line}"))
    return 0


def _confirm(args, run_dir, names: list[str]) -> None:
    """Judge the run's handed-over weights on pipelines it never saw before they are
    promoted (`farm evaluate RUN_DIR --on ...`: its rows are the promotion's evidence)."""
    from farm import api

    def say(text: str = "") -> None:
        print(printable(text, lines=True), flush=True)

    say(f"judging {run_dir}'s handed-over weights before promoting them, on pipelines it "
        f"never trained on: {', '.join(names)} (as farm evaluate {run_dir} --on ...; "
        "--force skips this)")
    done = api.evaluate(run_dir, on=names, devices=args.devices, address=args.address,
                        progress=say)
    for line in done.summary:
        say(line)


def _evidence(record) -> str:
    """What a model's evidence says in a cell: geometric mean, worst pipeline, how many."""
    e = record.evidence
    if e is None:
        return "-"
    mean, worst = e.get("geometric_mean"), e.get("worst")
    text = f"{mean:.2f}x gm" if isinstance(mean, (int, float)) else "no ratio"
    if isinstance(worst, list) and len(worst) == 2 and isinstance(worst[1], (int, float)):
        text += f", worst {worst[0]} {worst[1]:.2f}x"
    slower = e.get("slower") or []
    text += f", slower on {len(slower)} of {e.get('validated_on', '?')}"
    return text + f"; trained on {len(record.pipelines)}"


def _train(args) -> int:
    from farm import api

    def say(text: str = "") -> None:  # pipeline names from runs: control characters escaped
        print(printable(text, lines=True), flush=True)

    done = api.train_class_model(args.train_class, args.out, from_runs=args.from_runs,
                                 seeds=args.seeds, devices=args.devices,
                                 address=args.address, retimes=args.retimes, progress=say)
    r = done.model.record
    say(f"\nchosen: {done.chosen.line()}")
    say(f"registered for class {r.device_class}: {r.sha256[:16]} ({done.weights_path})")
    if done.model.current:
        say(f"it is the class's current model: a new run on class {r.device_class} without "
            "--weights starts from it")
    else:
        say(f"not made current: significantly slower on {', '.join(done.chosen.slower)}; "
            f"farm models promote {args.out} --force makes it current anyway")
    return 0
