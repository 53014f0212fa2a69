"""C++ generators beside Python ones: building the generator executable, and per candidate
the CPU seconds of autoscheduling, code generation and linking.

    python tests/perf/cpp_generators.py [--builds 3] [--probes 8] [--cpp DIR] [--python BENCH]

Interleaved (C++ twin, Python built-in, C++, ...) on this machine, nothing else running:
- build: examples/cpp/median3x3 compiled into a generator executable from an empty
  FARM_CACHE_DIR (wall seconds), `--builds` times;
- per candidate: the same probes (beam 1, dropout 1, seeds 1..N) and one beam-32, each
  checked for duplicates (compiler.autoschedule: a C++ generator generates its code in that
  run, kept for the build) and then built, for the C++ twin of median3x3 and the
  built-in; CPU seconds as the rows record them, and the whole candidate's (this
  process's and its children's).
Prints medians with min-max.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CPP = str(ROOT / "examples" / "cpp" / "median3x3")


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def time_builds(n: int, cpp: str) -> list[float]:
    code = ("from farm.pipelines import catalog, cpp_generators; "
            f"cpp_generators.executable(catalog.resolve({cpp!r}))")
    out = []
    for _ in range(n):
        with tempfile.TemporaryDirectory(prefix="farm-perf-cache-") as cache:
            start = time.monotonic()
            subprocess.run([sys.executable, "-c", code], check=True,
                           env=dict(os.environ, FARM_CACHE_DIR=cache))
            out.append(time.monotonic() - start)
    return out


def _cpu() -> float:
    """CPU seconds of this process and its finished children (generators, the linker)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_candidates(probes: int, cpp: str, python: str) -> dict[str, dict[str, list[float]]]:
    from farm.build import compiler
    from farm.candidate import BEAM_SEARCH, RANDOM_PROBE, CandidateSpec
    from farm.machine import targets
    from farm.model import weights
    from farm.pipelines import catalog

    host, w = targets.resolve(None), weights.baseline()
    benches = {"C++": catalog.resolve(cpp), "Python": catalog.resolve(python)}
    figures: dict[str, dict[str, list[float]]] = {
        k: {"duplicate check (autoschedule)": [], "autoschedule": [], "codegen": [],
            "link": [], "whole candidate (check + build)": [], "beam-32 autoschedule": []}
        for k in benches}
    for seed in range(1, probes + 1):
        for kind, bench in benches.items():  # interleaved
            spec = CandidateSpec(bench, host, w, seed=seed, **RANDOM_PROBE)
            before = _cpu()
            alone = compiler.autoschedule(spec)
            result, _, _ = compiler.build(spec)
            assert result.ok, result.error
            f = figures[kind]
            f["whole candidate (check + build)"].append(_cpu() - before)
            f["duplicate check (autoschedule)"].append(alone.autoschedule_s)
            f["autoschedule"].append(result.schedule.autoschedule_s)
            f["codegen"].append(result.codegen_s)
            f["link"].append(result.link_s)
    for _ in range(3):
        for kind, bench in benches.items():
            beam = compiler.autoschedule(CandidateSpec(bench, host, w, **BEAM_SEARCH))
            figures[kind]["beam-32 autoschedule"].append(beam.autoschedule_s)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--builds", type=int, default=3)
    p.add_argument("--probes", type=int, default=8)
    p.add_argument("--cpp", default=CPP, help="the C++ generator (default: %(default)s)")
    p.add_argument("--python", default="median3x3", help="the Python one beside it")
    args = p.parse_args()
    builds = time_builds(args.builds, args.cpp)
    print(f"building the C++ generator executable ({Path(args.cpp).name}, empty cache): "
          f"{_spread(builds)} s wall, {len(builds)} builds")
    figures = time_candidates(args.probes, args.cpp, args.python)
    print(f"per candidate, CPU seconds, median [min, max] of {args.probes} probes (beam-32: 3):")
    print(f"  {'':32} {'C++ generator':>24} {'Python generator':>24}")
    for phase in figures["C++"]:
        print(f"  {phase:32} {_spread(figures['C++'][phase]):>24} "
              f"{_spread(figures['Python'][phase]):>24}")


if __name__ == "__main__":
    main()
