"""farm export: a run's samples as Halide .sample and .schedule.h files."""

from __future__ import annotations

from farm.commands import writable_dir
from farm.costmodel import export_samples
from farm.errors import RunDirError
from farm.rundir import RunDir


def main(args) -> int:
    run = RunDir(args.run_dir)
    if run.read_manifest() is None:
        raise RunDirError(f"{args.run_dir} is not a run directory (no manifest.json)")
    out = writable_dir(args.dir, "DIR")
    n = export_samples(run.samples, out)
    print(f"wrote {n} .sample files (with their .schedule.h) to {out}; e.g. "
          f"`ls {out}/*.sample | adams2019_retrain_cost_model ...`")
    return 0
