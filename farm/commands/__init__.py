"""One module per `farm` subcommand: `add_parser(sub)` defines its arguments (helpers shared
by several commands are in farm.commands.options), `main(args)` is a thin layer over a library
function. `farm --help` imports every one of them, so they import the library (Ray, Halide,
pyarrow behind it) only inside main()."""

from __future__ import annotations

from pathlib import Path

from farm.errors import BadInput


def writable_dir(path: str, option: str = "--out") -> Path:
    """`path` as a directory we can write into, created if needed."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".farm-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise BadInput(f"{option} {path} is not a writable directory ({e.strerror}); "
                       f"choose another {option}") from None
    return out
