"""farm benchmarks: the built-in benchmarks, a line each."""

from __future__ import annotations

from farm.catalog import builtin_benchmarks


def main(args) -> int:
    benches = builtin_benchmarks()
    width = max(len(b.name) for b in benches)
    for b in benches:
        print(f"{b.name:<{width}}  {b.description}")
    return 0
