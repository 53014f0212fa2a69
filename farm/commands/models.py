"""farm models: each device class's models, and which one the commands use."""

from __future__ import annotations

import argparse

from farm.report.output import columns, printable

HEADER = ("CLASS", "CURRENT", "MODEL", "PROMOTED (UTC)", "KIND", "ROUNDS", "SAMPLES", "SOURCE")

EPILOG = """the registry:
  Each device class (as `farm devices` names it) has a current model: a new `farm run`,
  `farm autotune`, `farm pretrain` or `farm bench` without --weights starts from it, and
  says so in its first line (--weights baseline: Halide's own weights). A resumed run keeps
  the start weights it began with. `farm models promote RUN_DIR` makes a run's handed-over
  weights (RUN_DIR/weights/best.weights) its class's current model.

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


def main(args) -> int:
    from farm.model.registry import Registry

    registry = Registry()
    if args.models_command == "promote":
        from farm.workflows.models import promote

        model = promote(args.run_dir, args.promote_class or args.device_class, registry)
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
             str(m.record.rounds), str(m.record.samples), m.record.source)
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
