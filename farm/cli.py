"""The `farm` command line: parses, calls the library, prints.

Each subcommand is a module of farm.commands: its `add_parser(sub)` defines its arguments
and its `main(args)` does the work. This module keeps the top-level parser, --version, the
dispatch and the error boundary: errors from the library (farm.errors) become one line on
stderr (its control characters escaped: a name from a run directory may hold any) and an
exit code, 2 for what the user must fix, 1 for a failure during the work.
"""

from __future__ import annotations

import os
import sys

from farm import __version__
from farm.commands import (
    autotune,
    bench,
    benchmarks,
    devices,
    evaluate,
    export,
    imports,
    models,
    pretrain,
    report,
    run,
    weights,
)
from farm.commands.options import Parser
from farm.errors import FarmError, Interrupted
from farm.execution.cluster import exit_when_stuck, lost_head
from farm.report.output import printable

# in the order `farm --help` lists them
COMMANDS = {getattr(m, "NAME", m.__name__.rpartition(".")[2]): m
            for m in (run, autotune, pretrain, devices, models, report, bench, evaluate, export,
                      imports, weights, benchmarks)}


def build_parser() -> Parser:
    parser = Parser(
        prog="farm",
        description="Autotune Halide's Adams2019 cost model on a farm of devices.",
        epilog="Start with `farm run median3x3`, then `farm autotune median3x3 --out run`. "
        "Every command that writes files takes --out for where.")
    parser.add_argument("--version", action="store_true",
                        help="print the farm's, Halide's and Ray's versions")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="what to do (`farm COMMAND --help` for its options)")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _not_utf8(args) -> str | None:
    """What of the command line or the working folder is not UTF-8 text (Python reads such
    bytes as lone surrogates, which Ray and the run's JSON records cannot carry: Ray's own
    traceback followed), said in one line."""
    def text(value: str) -> bool:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    for value in vars(args).values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not text(v):
                return (f"{v!a} holds bytes that are not UTF-8 (Ray and the run's records "
                        "carry text only): give it a UTF-8 name")
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    if not text(cwd):
        return (f"the working folder {cwd!a} holds bytes that are not UTF-8: run the farm "
                "from a folder with a UTF-8 name")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(_versions())
        return 0
    if not args.command:
        parser.print_help()
        return 2
    bad = _not_utf8(args)
    if bad:
        print(f"farm {args.command}: error: {bad}", file=sys.stderr)
        return 2
    exit_when_stuck()  # this process is the command: a Ray stuck on a lost head ends it
    try:
        return COMMANDS[args.command].main(args) or 0
    except (FarmError, KeyboardInterrupt) as e:
        lost = lost_head()  # the watcher stopped the command: say why, not "interrupted"
        if lost is not None:
            print(f"farm {args.command}: error: {printable(str(lost))}", file=sys.stderr)
            return 1
        if isinstance(e, KeyboardInterrupt):
            print(f"farm {args.command}: interrupted", file=sys.stderr)
            return 130
        if isinstance(e, Interrupted):  # "interrupted; ...": no "error:" before a Ctrl-C
            print(f"farm {args.command}: {printable(str(e))}", file=sys.stderr)
            return e.exit_code
        e = _raised_in_task(e)
        print(f"farm {args.command}: error: {printable(str(e))}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        raised = _raised_in_task(e)
        if isinstance(raised, FarmError):  # a Ray task's typed error: its own message
            print(f"farm {args.command}: error: {printable(str(raised))}", file=sys.stderr)
            return raised.exit_code
        ray_exceptions = sys.modules.get("ray.exceptions")
        if not type(e).__module__.startswith("ray.") or (
                ray_exceptions is not None and isinstance(e, ray_exceptions.RayTaskError)):
            raise  # a bug (in a Ray task too, which Ray wraps): its traceback is the report
        # Ray's own error reached the top: the cluster failed under the command
        why = lost_head(check=True) or (
            f"the Ray cluster failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}. "
            "The committed rounds are kept; rerun the same command to resume")
        print(f"farm {args.command}: error: {printable(why)}", file=sys.stderr)
        return 1


def _raised_in_task(e):
    """The exception a Ray task raised, for the RayTaskError Ray raised in its stead (whose
    text is the task's traceback); `e` itself otherwise."""
    ray_exceptions = sys.modules.get("ray.exceptions")
    if ray_exceptions is not None and isinstance(e, ray_exceptions.RayTaskError) and \
            isinstance(e.cause, BaseException):
        return e.cause
    return e


def _versions() -> str:
    from farm.versions import versions

    v = versions()
    return f"farm {__version__}, Halide {v['halide']}, Ray {v['ray']}"
