"""How long `farm` takes to refuse what needs no cluster (issue 22: under 2 s each).

    python tests/perf/refusals.py [--times 5]

Runs each refusal as a user meets it, a real `farm ...` process from a scratch folder,
--times times, checks that it exits 2 with one line on stderr, and prints the wall-clock
seconds (min / median / max). Each is refused before Ray starts: starting Ray alone takes
5 s or more on our 2-core hosts, so a time under 2 s is also the proof.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from farm.candidate import DEFAULT_PARALLELISM
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.store.records import Manifest
from farm.store.rundir import RunDir, now_iso

AIM_S = 2.0


def refusals(scratch: Path) -> dict[str, list[str]]:
    """Name -> the `farm` arguments of a refusal, its files made in `scratch`."""
    notes = scratch / "notes.txt"
    notes.write_text("not a folder\n")
    bad = scratch / "bad.weights"
    bad.write_bytes(b"not weights")
    evaluated = scratch / "evaluated"
    evaluated.mkdir()
    (evaluated / "evaluate.parquet").write_bytes(b"")
    run = scratch / "run"  # a run of batch size 8, resumed with 4
    run.mkdir()
    bench, host = catalog.resolve("median3x3"), targets.resolve("host")
    RunDir(run).write_manifest(Manifest(
        run_id="perf0001", benchmark=bench.ref, generator=bench.label,
        benchmark_sha256=bench.sha256, target=host.compile, schedule_target=host.schedule,
        batch_size=8, parallelism=DEFAULT_PARALLELISM,
        start_weights_sha256=weights.baseline().sha256, created_at=now_iso()))
    fresh = str(scratch / "fresh")
    return {
        "autotune --out a file": ["autotune", "median3x3", "--out", str(notes)],
        "autotune --out inside a file": ["autotune", "median3x3", "--out", f"{notes}/run"],
        "autotune --out another command's": ["autotune", "median3x3", "--out",
                                             str(evaluated)],
        "autotune unknown --device": ["autotune", "median3x3", "--device", "phone7@nowhere",
                                      "--out", fresh],
        "autotune changed setting on resume": ["autotune", "median3x3", "--out", str(run),
                                               "--batch-size", "4"],
        "autotune bad --weights": ["autotune", "median3x3", "--weights", str(bad), "--out",
                                   fresh],
        "autotune unknown BENCH": ["autotune", "median9x9", "--out", fresh],
        "run --out a file": ["run", "median3x3", "--out", str(notes)],
        "run unknown --device": ["run", "median3x3", "--device", "phone7@nowhere", "--out",
                                 fresh],
        "bench --out a file": ["bench", "median3x3", "--out", str(notes)],
        "bench unknown --device": ["bench", "median3x3", "--device", "phone7@nowhere",
                                   "--out", fresh],
        "bench bad --weights": ["bench", "median3x3", "--weights", str(bad), "--out", fresh],
    }


def time_one(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "farm", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    seconds = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 2 or len(lines) != 1:
        raise SystemExit(f"farm {' '.join(args)}: exit {proc.returncode}, not a one-line "
                         f"refusal:\n{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=5, help="runs of each (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="farm-refusals-") as tmp:
        scratch = Path(tmp)
        cases = refusals(scratch)
        width = max(map(len, cases))
        print(f"{'refusal':<{width}}  {'min':>6}  {'median':>6}  {'max':>6}  (s, "
              f"{args.times} runs each)")
        slow = []
        for name, argv in cases.items():
            times = [time_one(argv, scratch) for _ in range(args.times)]
            print(f"{name:<{width}}  {min(times):6.2f}  {statistics.median(times):6.2f}  "
                  f"{max(times):6.2f}", flush=True)
            if statistics.median(times) >= AIM_S:
                slow.append(name)
    print(f"\nover {AIM_S:g} s (median): {', '.join(slow) or 'none'}")


if __name__ == "__main__":
    main()
