"""The `farm` command line: parses, calls the library, prints.

Errors from the library (farm.errors) become one line on stderr and an exit
code: 2 for what the user must fix, 1 for a failure during the work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from farm import __version__
from farm.candidate import DEFAULT_PARALLELISM
from farm.errors import FarmError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user error
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {text})")
    return value


def _duration(text: str) -> float:
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != text.strip().lower():
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 45m, 2h, 1h30m")
    seconds = sum(float(n) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[u]
                  for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration")
    return seconds


def _add_address(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="ADDR", help="a Ray cluster to use (default: "
                   "$RAY_ADDRESS, else this machine only)")


def _add_common(p: argparse.ArgumentParser, *, devices: str = "one") -> None:
    p.add_argument("--parallelism", type=_positive_int, default=DEFAULT_PARALLELISM,
                   metavar="P", help="the autoscheduler's parallelism and the Halide thread "
                   f"count when timing (default {DEFAULT_PARALLELISM}, best measured on "
                   "2-core hosts; see README)")
    p.add_argument("--weights", metavar="FILE", help="cost-model weights (default: the "
                   "baseline weights built into Halide's Adams2019 plugin)")
    p.add_argument("--target", metavar="T", help="Halide target: host (default; "
                   "arm-64-android-hvx when --device names a phone) or e.g. "
                   "arm-64-android-hvx-hvx_v66 for a phone's Hexagon DSP")
    _add_address(p)
    if devices == "one":
        p.add_argument("--device", metavar="ID", help="device to time on (see `farm devices`; "
                       "default: this host's CPU, or the first device for --target)")
    else:
        p.add_argument("--device", metavar="ID", nargs="+", dest="devices", help="devices to "
                       "time on (see `farm devices`; default: every usable one)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="farm",
        description="Autotune Halide's Adams2019 cost model on a farm of devices.",
        epilog="Start with `farm run median3x3`, then `farm autotune median3x3 --out run`.")
    parser.add_argument("--version", action="store_true",
                        help="print the farm's, Halide's and Ray's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="autoschedule a benchmark and time it (with its manual "
                       "schedule beside it)", description="Autoschedule BENCH with Adams2019, "
                       "time it on a device, and time the benchmark's own (manual) schedule "
                       "beside it. Writes BENCH.schedule.h under --out.")
    p.add_argument("benchmark", metavar="BENCH", help="a built-in benchmark (`farm benchmarks`) "
                   "or path/to/file.py:generator_name")
    p.add_argument("--beam-size", type=_positive_int, default=32, metavar="N",
                   help="beam size of the autoscheduler's search (default 32)")
    _add_common(p)
    p.add_argument("--out", metavar="DIR", default=".", help="where to write the "
                   ".schedule.h (default: the current directory)")
    p.add_argument("--no-manual", action="store_true", help="skip the manual schedule")

    p = sub.add_parser(
        "autotune", help="autotune the cost model for one benchmark on your devices",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Autotune Adams2019's cost model for BENCH: each round compiles "
        "--batch-size candidate schedules (candidate 0 is beam search with the accepted "
        "weights, the others random probes from the accepted and the start weights), times "
        "them on the devices and records every candidate in RUN_DIR/samples/. Then it trains "
        "a few candidate models on the earlier rounds and keeps one only if it ranks the new "
        "round's schedules better than the current weights beyond the noise.",
        epilog="""how do I tune longer?
  --rounds is the total number of rounds RUN_DIR should hold. Rerun the same command
  with a larger --rounds to continue a run (its seeds, weights and samples carry on);
  rerun it unchanged after a crash or Ctrl-C to finish it. --budget 2h stops cleanly
  after the round in progress once two hours are spent (rerun to go on).

at the end the finalists (the fastest samples, beam search with the start, accepted and
final weights, the manual schedule) are re-timed, interleaved, with 95% intervals; it
prints the best schedule (RUN_DIR/best/) and the `farm run` command that uses the handed-over
weights (RUN_DIR/weights/best.weights: tuned weights only where their beam search is
significantly faster than the start weights', else the start weights).""")
    p.add_argument("benchmark", metavar="BENCH", help="a built-in benchmark or "
                   "path/to/file.py:generator_name")
    p.add_argument("--out", metavar="RUN_DIR", required=True, help="the run directory "
                   "(created, or resumed when it exists)")
    p.add_argument("--rounds", type=_positive_int, default=1, metavar="R",
                   help="total rounds RUN_DIR should hold (default 1)")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                   help="candidates per round (default 32, as Halide's loop)")
    p.add_argument("--budget", type=_duration, metavar="DURATION", help="stop after the "
                   "round in progress once this much time is spent, e.g. 45m, 2h, 1h30m")
    _add_common(p, devices="many")
    p.add_argument("--compile-timeout", type=_positive_float, default=600.0, metavar="S",
                   help="kill a candidate's compile after S seconds (default 600)")
    p.add_argument("--run-timeout", type=_positive_float, default=60.0, metavar="S",
                   help="kill a candidate's timing run after S seconds (default 60)")
    p.add_argument("--train-steps", "--epochs", type=_positive_int, dest="train_steps",
                   default=32, metavar="N", help="gradient steps per candidate model trained "
                   "after each round (default 32; what Halide's trainer calls --epochs: each "
                   "is ONE step on at most 1024 schedules per pipeline, not a pass over the "
                   "samples)")
    p.add_argument("--isolation", choices=("pause", "none"), default="pause",
                   help="pause: stop the host's compile work while it times (default); "
                   "none: time alongside it")

    p = sub.add_parser("devices", help="list the devices of this machine or cluster, and what "
                       "keeps any from being used")
    _add_address(p)
    p = sub.add_parser("report", help="summarize a run directory: a table per round, the "
                       "final re-timing, plots")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="where the PNG plots go (default RUN_DIR/report)")
    p.add_argument("--html", action="store_true", help="also write an index.html with them")

    p = sub.add_parser(
        "bench", help="did pretraining help? manual vs beam-32 with baseline and tuned weights "
        "vs a run's best schedule, per device",
        description="Time, per benchmark and device, the manual schedule, beam-32 with the "
        "baseline weights, beam-32 with tuned weights (--weights, or the run's best.weights) "
        "and the best schedule a run found (--run), each re-timed --repeats times.")
    p.add_argument("benchmarks", metavar="BENCH", nargs="*", help="built-in benchmarks, "
                   "path.py:name, or `all` (default: the --run's benchmark)")
    p.add_argument("--device", metavar="ID", nargs="+", dest="devices",
                   help="devices (default: every usable one)")
    p.add_argument("--weights", metavar="FILE", help="tuned weights (default: the run's "
                   "best.weights)")
    p.add_argument("--run", metavar="RUN_DIR", help="a `farm autotune` run directory")
    p.add_argument("--repeats", type=_positive_int, default=10, metavar="N",
                   help="interleaved re-timings per schedule and device (default 10: enough "
                   "for a true 10%% difference on median3x3 to get a verdict in 8 of 10 runs "
                   "on our 2-core hosts; see PERFORMANCE.md)")
    p.add_argument("--out", metavar="DIR", default="farm-bench", help="where the Parquet "
                   "rows and the plot go (default ./farm-bench)")
    _add_address(p)

    p = sub.add_parser("export", help="write a run's samples as Halide .sample files with "
                       "their .schedule.h")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("dir", metavar="DIR")

    p = sub.add_parser("weights", help="write or check cost-model weights files")
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", parser_class=_Parser,
                            required=True)
    w = wsub.add_parser("baseline", help="write the baseline weights built into Halide's "
                        "Adams2019 plugin (the start weights for autotuning)")
    w.add_argument("-o", "--output", required=True, metavar="FILE")
    w = wsub.add_parser("check", help="say whether a weights file is usable, and why not")
    w.add_argument("file", metavar="FILE")

    sub.add_parser("benchmarks", help="list the built-in benchmarks")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(_versions())
        return 0
    if not args.command:
        parser.print_help()
        return 2
    try:  # each subcommand is a module of farm.commands with a main(args)
        return importlib.import_module(f"farm.commands.{args.command}").main(args) or 0
    except FarmError as e:
        print(f"farm {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"farm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _versions() -> str:
    from farm.versions import versions

    v = versions()
    return f"farm {__version__}, Halide {v['halide']}, Ray {v['ray']}"


