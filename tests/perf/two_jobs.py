"""Two `farm autotune` jobs on one two-node Ray cluster at once (as two users' `ray job
submit`s): both complete, no two timed rows overlap on one device, no row overlaps the
other job's lease in the lease log, and `farm devices --address` shows who holds what
while they run.

    python tests/perf/two_jobs.py [--batch-size 12] [--rounds 1] [--out DIR]

The cluster is tests/raycluster.py's (`ray start` processes on this machine, one CPU
each). It compiles and times real pipelines: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: raycluster

from raycluster import LocalCluster, auth_env

from farm.execution.leases import history
from farm.store.samples import SampleStore

PIPELINES = ("median3x3", "sobel")


def farm(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "farm", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="farm-two-jobs-"))
    leases = out / "leases"
    env = dict(os.environ, **auth_env(), FARM_LEASE_DIR=str(leases), PYTHONUNBUFFERED="1")
    os.environ["FARM_LEASE_DIR"] = str(leases)
    cluster = LocalCluster(workers=1, cpus=1, node_env=[{"FARM_LEASE_DIR": str(leases)}] * 2)
    try:
        runs = {p: out / f"run-{p}" for p in PIPELINES}
        jobs = {p: farm("autotune", p, "--rounds", args.rounds, "--batch-size",
                        args.batch_size, "--address", cluster.address, "--out", runs[p],
                        env=env) for p in PIPELINES}
        shown = 0
        while any(j.poll() is None for j in jobs.values()):
            time.sleep(5)
            if shown < 2:
                devices = subprocess.run(
                    [sys.executable, "-m", "farm", "devices", "--address", cluster.address],
                    env=env, capture_output=True, text=True).stdout
                if "HELD BY" in devices:
                    shown += 1
                    print("`farm devices --address` while both run:\n" + devices)
        for p, j in jobs.items():
            text = j.stdout.read() if j.stdout else ""
            print(f"{p}: exit {j.returncode}; last line: {text.strip().splitlines()[-1]}")
    finally:
        cluster.stop()
    rows = []
    for run in runs.values():
        for r in SampleStore(run / "samples").read().to_pylist():
            if r["timing_started_at"] is not None:
                rows.append((r["device_id"], r["timing_started_at"].timestamp(),
                             r["timing_ended_at"].timestamp(), str(run)))
    overlaps = 0
    for device in sorted({r[0] for r in rows}):
        mine = sorted(r for r in rows if r[0] == device)
        overlaps += sum(b[1] < a[2] for a, b in itertools.pairwise(mine))
    print(f"{len(rows)} timed rows on {len({r[0] for r in rows})} devices; pairs of rows "
          f"overlapping on one device: {overlaps}")
    # every row lies in a lease of its own job: it overlaps no other job's lease
    crossing = 0
    for device in sorted({r[0] for r in rows}):
        spans = [(datetime.fromisoformat(x["from"]).timestamp(),
                  datetime.fromisoformat(x["to"]).timestamp(), x["run"])
                 for x in history(device, leases)]
        for _, start, end, run in (r for r in rows if r[0] == device):
            crossing += any(s < end and start < e and who != run for s, e, who in spans)
        print(f"  {device}: {len(spans)} leases logged, by "
              f"{', '.join(sorted({Path(w).name for _, _, w in spans}))}")
    print(f"rows overlapping another job's lease: {crossing}")
    return 0 if overlaps == 0 and crossing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
