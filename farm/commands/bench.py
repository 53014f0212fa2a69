"""farm bench: manual vs beam-32 baseline vs beam-32 tuned vs a run's best, per device."""

from __future__ import annotations

from farm.bench import format_table, run_bench, write_results
from farm.commands import writable_dir


def main(args) -> int:
    out = writable_dir(args.out)
    rows = run_bench(args.benchmarks, args.devices, args.weights, args.run, args.address,
                     repeats=args.repeats, progress=lambda text: print(text, flush=True))
    if not rows:
        print("no usable device to bench on (see `farm devices`)")
        return 1
    print()
    print(format_table(rows))
    table, plot = write_results(rows, out)
    print(f"\nrows: {table}\nplot: {plot}")
    return 0
