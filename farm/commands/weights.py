"""farm weights baseline|check."""

from __future__ import annotations

from farm.commands import options


def add_parser(sub) -> None:
    p = sub.add_parser("weights", help="write or check cost-model weights files")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True,
                            help="what to do with weights")
    w = wsub.add_parser("baseline", help="write the baseline weights built into Halide's "
                        "Adams2019 plugin (the start weights for autotuning)")
    options.add_out(w, "FILE", required=True, old_options=("-o", "--output"),
                    help="the weights file to write")
    w = wsub.add_parser("check", help="say whether a weights file is usable, and why not")
    w.add_argument("file", metavar="FILE", help="the weights file to check")


def main(args) -> int:
    from farm.errors import BadInput
    from farm.model import weights

    if args.weights_command == "baseline":
        w = weights.baseline()
        try:
            weights.write(w, args.out)
        except OSError as e:
            raise BadInput(f"cannot write {args.out}: {e.strerror}") from None
        print(f"wrote {args.out} ({len(w.data)} bytes, sha256 {w.sha256[:16]}), "
              f"the {w.origin}")
        return 0
    w = weights.load(args.file)
    print(f"{args.file}: usable Adams2019 weights ({len(w.data)} bytes, sha256 "
          f"{w.sha256[:16]})")
    return 0
