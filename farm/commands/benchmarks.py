"""farm benchmarks: the built-in benchmarks, a line each."""

from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("benchmarks", help="list the built-in benchmarks")


def main(args) -> int:
    from farm.catalog import builtin_benchmarks

    benches = builtin_benchmarks()
    width = max(len(b.name) for b in benches)
    for b in benches:
        print(f"{b.name:<{width}}  {b.description}")
    return 0
