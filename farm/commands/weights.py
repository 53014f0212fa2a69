"""farm weights baseline|check."""

from __future__ import annotations

from farm import weights
from farm.errors import BadInput


def main(args) -> int:
    if args.weights_command == "baseline":
        w = weights.baseline()
        try:
            weights.write(w, args.output)
        except OSError as e:
            raise BadInput(f"cannot write {args.output}: {e.strerror}") from None
        print(f"wrote {args.output} ({len(w.data)} bytes, sha256 {w.sha256[:16]}), "
              f"the {w.origin}")
        return 0
    w = weights.load(args.file)
    print(f"{args.file}: usable Adams2019 weights ({len(w.data)} bytes, sha256 "
          f"{w.sha256[:16]})")
    return 0
