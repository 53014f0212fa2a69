"""farm benchmarks: the built-in benchmarks, a line each, and how to name your own."""

from __future__ import annotations

RANDOM = """
The farm's random pipelines, for pre-training (not built-ins, not in `all`): random:seed=N,
with stages=8, size=256, types=float|int and version=1 (docs/generators.md)."""

YOUR_OWN = """
Your own generators (BENCH for farm run, autotune and bench):
  path/to/file.py:NAME       a Python generator (@hl.generator) in that file, by the name
                             Halide gives it when the file runs as a script (an
                             @hl.alias by its alias name); its folder's modules travel
  path/to/dir                a C++ generator folder, as Halide's apps keep them: every
                             *_generator.cpp in it, built once per node against the halide
                             wheel; add :NAME when it registers several generators
  path/to/file.cpp[:NAME]    one C++ generator file (headers beside it travel too)
  path/to/exe[:NAME]         a prebuilt generator executable (linked against the wheel's
                             shared libHalide)
  BENCH:name=value,...       generator parameters; two sets are two pipelines
Each needs estimates on every input and output. Examples: examples/cpp/median3x3,
examples/cpp/conv3x3:accumulator_type=int32 (docs/generators.md)."""


def add_parser(sub) -> None:
    sub.add_parser("benchmarks", help="list the built-in benchmarks and how to name your own "
                   "generators", description="The built-in benchmarks, and the forms BENCH "
                   "takes for your own generators (Python, C++ or an executable).")


def main(args) -> int:
    from farm.pipelines import catalog

    six, families = catalog.builtin_benchmarks(), catalog.corpus_families()
    width = max(len(b.name) for b in (*six, *catalog.corpus_benchmarks()))
    print("Built-in benchmarks (the suite `all`: Halide's hexagon benchmarks):")
    for b in six:
        print(f"  {b.name:<{width}}  {b.description}")
    if families:
        count = sum(len(f) for f in families.values())
        print(f"\nThe corpus (the suite `corpus`: {count} real pipelines in {len(families)} "
              "families; each family's name is a suite too):")
        for family, benches in families.items():
            print(f"  {family}:")
            for b in benches:
                print(f"    {b.name:<{width}}  {b.description}")
    print(YOUR_OWN)
    print(RANDOM)
    return 0
