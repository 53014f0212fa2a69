"""What the subcommands' parsers share: the parser class, value types, option groups.

Every command that writes something takes `--out` for where; old spellings stay as hidden
aliases (`DeprecatedAlias`) that still work and say once on stderr what to type instead.
Only light modules are imported here: `farm --help` builds every subcommand's parser.
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from farm.candidate import COMPILE_WALL_FACTOR, DEFAULT_PARALLELISM
from farm.machine import limits
from farm.pipelines.benchmark import FORMS

# What BENCH can be, for every command's help (farm.pipelines.catalog resolves them)
BENCH_KINDS = f"{FORMS}; generator parameters follow as BENCH:name=value,..."


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit 2, as every user error,
    and which takes no abbreviated option (a typo in a long run's option is costly: `--round`
    was taken for --rounds)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # a required --out with hidden aliases is a required group; say it as argparse
        # says it for a plain required option
        m = re.fullmatch(r"one of the arguments (\S+) is required", message)
        if m:
            message = f"the following arguments are required: {m.group(1)}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str, bound: str | None = None) -> int:
    """A whole number of at least 1 and at most farm.limits' `bound` for it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return _bounded(value, bound)


def positive_float(text: str, bound: str | None = None) -> float:
    """A finite positive number, at most farm.limits' `bound` for it."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite positive number (got {text})")
    return _bounded(value, bound)


def _bounded(value, bound: str | None):
    wrong = limits.past_bound(bound, value) if bound is not None else None
    if wrong:  # argparse names the option: the bound and why are the rest
        raise argparse.ArgumentTypeError(wrong)
    return value


def bounded_int(bound: str):
    """An argparse type: positive_int bounded by farm.limits' `bound`."""
    def parse(text: str) -> int:
        return positive_int(text, bound)
    parse.__name__ = "whole number"  # what argparse calls it in "invalid ... value"
    return parse


def bounded_float(bound: str):
    """An argparse type: positive_float bounded by farm.limits' `bound`."""
    def parse(text: str) -> float:
        return positive_float(text, bound)
    parse.__name__ = "number"
    return parse


def duration(text: str) -> float:
    """Seconds in '90s', '45m', '2h', '1h30m', '1d' or a bare number of seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 45m, 2h, 1h30m")
    seconds = sum(float(n) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[u]
                  for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return _bounded(seconds, "budget_s")


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of `--out`: stores into `out` and warns on stderr.

    Works for an option (`-o/--output`) and for an optional positional (nargs="?"), which
    argparse also calls with its default when absent: then it does nothing.
    """

    def __init__(self, option_strings, dest, **kwargs):
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            return
        old = option_string or f"a second positional {self.metavar or self.dest}"
        print(f"{parser.prog}: warning: {old} is deprecated; use --out "
              f"{self.metavar or 'OUT'}", file=sys.stderr)
        namespace.out = values


def add_out(p: argparse.ArgumentParser, metavar: str, help: str, *, default=None,
            required: bool = False, old_options: tuple[str, ...] = (),
            old_positional: bool = False) -> None:
    """`--out METAVAR`, the one spelling of "where to write", with any old spellings hidden.

    `old_options` (e.g. "-o", "--output") and `old_positional` (a trailing positional) keep
    scripts written for the old spelling working; giving an old one and --out is an error.
    """
    if not (old_options or old_positional):
        p.add_argument("--out", metavar=metavar, default=default, required=required, help=help)
        return
    # a required (or at-most-one) group: --out or exactly one old spelling, never two
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--out", metavar=metavar, default=default, help=help)
    if old_options:
        group.add_argument(*old_options, dest="out", metavar=metavar, action=DeprecatedAlias)
    if old_positional:
        group.add_argument("old_out", nargs="?", metavar=metavar, action=DeprecatedAlias)


def add_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="ADDR", help="a Ray cluster to use (default: "
                   "$RAY_ADDRESS, else this machine only)")


def add_parallelism(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parallelism", type=bounded_int("parallelism"), default=DEFAULT_PARALLELISM,
                   metavar="P", help="the autoscheduler's parallelism and the Halide thread "
                   f"count when timing (default {DEFAULT_PARALLELISM}, best measured on "
                   "2-core hosts; see docs/clusters.md)")


def add_weights(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--weights", metavar="FILE", help=help or "cost-model weights: a file, or "
                   "`baseline` for the weights built into Halide's Adams2019 plugin (default: "
                   "the device class's current model, `farm models`; else the baseline)")


def add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", metavar="T", help="Halide target: host (default; "
                   "arm-64-android-hvx when --device names a phone) or e.g. "
                   "arm-64-android-hvx-hvx_v66 for a phone's Hexagon DSP")


class _Once(argparse.Action):
    """A single-valued option that is an error to give twice (not: the last one wins)."""

    def __init__(self, option_strings, dest, twice: str = "", **kwargs):
        self.twice = twice
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, self.twice or f"give {option_string} once")
        setattr(namespace, self.dest, values)


def add_device(p: argparse.ArgumentParser, twice: str) -> None:
    """`--device ID`, one device: a second --device is an error saying `twice`."""
    p.add_argument("--device", metavar="ID", action=_Once, twice=twice,
                   help="device to time on (see `farm devices`; default: this host's CPU, "
                   "or the first device for --target); give it once")


def add_devices(p: argparse.ArgumentParser, help: str = "devices to time on (see `farm "
                "devices`; default: every usable one); `--device a b` and `--device a "
                "--device b` both name two") -> None:
    """`--device ID [ID ...]`, repeatable: every ID given lands in args.devices."""
    p.add_argument("--device", metavar="ID", nargs="+", action="extend", dest="devices",
                   help=help)


def add_compile_timeout(p: argparse.ArgumentParser, default: float = 600.0) -> None:
    p.add_argument("--compile-timeout", type=bounded_float("timeout_s"), default=default,
                   metavar="S",
                   help="end a candidate's compile once it has used S seconds of CPU "
                   f"(default {default:g}; CPU time: a compile paused while a device times is not "
                   "charged, and one that hangs without using CPU is ended after "
                   f"{COMPILE_WALL_FACTOR:g} x S of wall-clock time)")


def add_run_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-timeout", type=bounded_float("timeout_s"), default=60.0, metavar="S",
                   help="kill a candidate's timing run after S seconds (default 60)")


def pipeline_weight(text: str) -> tuple[str, float]:
    """`--pipeline-weight BENCH=W`: a name and a weight above 0."""
    name, sep, value = text.rpartition("=")
    try:
        weight = float(value)
    except ValueError:
        weight = -1.0
    if not sep or not name or not (weight > 0 and weight < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: give BENCH=W, W a number above 0 "
                                         "(e.g. sobel=2)")
    return name, weight


def add_also_train_on(p: argparse.ArgumentParser) -> None:
    p.add_argument("--also-train-on", metavar="RUN_DIR", action="append", default=[],
                   help="also train the model on this run directory's samples (repeatable): "
                   "a `farm import` of Halide's loop, or another run, of the same device "
                   "class (another class's is refused); a resumed run keeps its own")


def add_isolation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--isolation", choices=("pause", "none"), default="pause",
                   help="pause: stop the host's compile work while it times (default); "
                   "none: time alongside it")


def add_retimes(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    """`--retimes N`: interleaved re-timings per schedule, each a whole run of the timing
    harness (whose own --samples are the "repeats" inside one timing). `--repeats`, the
    old spelling in `farm bench` and `farm evaluate`, is the same option."""
    p.add_argument("--retimes", "--repeats", dest="retimes", type=bounded_int("retimes"),
                   default=default, metavar="N",
                   help=help + "; --repeats is its old name, still accepted")


def add_common(p: argparse.ArgumentParser) -> None:
    """--parallelism, --weights, --target and --address: how a candidate is made, and where."""
    add_parallelism(p)
    add_weights(p)
    add_target(p)
    add_address(p)
