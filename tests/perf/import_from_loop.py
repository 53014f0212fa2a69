"""Moving from Halide's loop: two batches of adams2019_autotune_loop.sh (from the wheel) on
the C++ generator of a benchmark, `farm import` of its samples folder, then `farm autotune`
of that benchmark with `--also-train-on` the import. Printed: the row counts, and how many
of the imported rows reached training (the trainer's .sample files of the run).

    python tests/perf/import_from_loop.py [--bench median3x3] [--batch 16] [--out DIR]

It compiles and times: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_loop import count, prepare, run_batches

from farm.devices.host import host_info
from farm.model.retrain import file_name
from farm.store.rundir import RunDir


def farm(*args) -> str:
    proc = subprocess.run([sys.executable, "-m", "farm", *map(str, args)],
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"farm {args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="median3x3")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="farm-from-loop-"))
    paths = prepare(out / "work")
    samples = out / "samples"
    wall = run_batches(paths, args.bench, args.batch, 2, samples)
    measured, distinct = count(samples)
    print(f"Halide's loop: 2 batches of {args.batch} on {args.bench} in {wall:.0f} s: "
          f"{measured} samples with a runtime, {distinct} distinct schedules")
    device_class = host_info().device_class.name
    print(farm("import", samples, "--out", out / "imported", "--class", device_class,
               "--weights", paths["weights"]).strip())  # the loop retrains it in place
    print(farm("autotune", args.bench, "--rounds", 2, "--batch-size", args.batch,
               "--weights", "baseline", "--also-train-on", out / "imported", "--out",
               out / "run").strip()
          .splitlines()[-1])
    imported = RunDir(out / "imported").samples.read(["sample_id", "status"]).to_pylist()
    own = RunDir(out / "run").samples.read(["sample_id", "status"]).to_pylist()
    trained = {p.name for p in RunDir(out / "run").sample_files.dir.iterdir()}
    reached = sum(file_name(r["sample_id"]) in trained for r in imported)
    print(f"rows: {len(imported)} imported, {len(own)} the run's own; "
          f"{reached} of the imported rows reached the run's training files "
          f"({len(trained)} files in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
