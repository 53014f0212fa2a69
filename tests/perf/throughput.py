"""Distinct schedules measured per hour: the farm against Halide's own loop, on this machine,
one after the other, same benchmark and batch size.

    python tests/perf/throughput.py [--bench median3x3] [--batch 16 32] [--work DIR]

Farm: `farm autotune BENCH --rounds 2 --batch-size B` timed end to end (Ray start-up,
retraining and the final re-timing included; the farm's caches may be warm). Upstream: two
batches of B of adams2019_autotune_loop.sh in a fresh samples folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import upstream_loop

from farm.store.samples import SampleStore


def warm_caches(bench: str, scratch: Path) -> None:
    """Build the farm's timing harness and Halide runtime for this machine (cached once per
    machine, as after any earlier use), so they are not counted against the farm."""
    subprocess.run([sys.executable, "-m", "farm", "run", bench, "--beam-size", "1",
                    "--no-manual", "--out", str(scratch)], check=True, stdout=subprocess.DEVNULL)


def run_farm(bench: str, batch: int, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "farm", "autotune", bench, "--rounds", "2",
                    "--batch-size", str(batch), "--weights", "baseline", "--out", str(out)],
                   check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.monotonic() - start
    rows = SampleStore(out / "samples").read(["status", "schedule_key"]).to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    records = [json.loads(p.read_text()) for p in sorted((out / "rounds").glob("*.json"))]
    phases = {k: sum(r[k] for r in records) for k in
              ("autoschedule_s", "precheck_s", "codegen_s", "link_s", "timing_s", "retrain_s",
               "wall_s")}
    return {"wall": wall, "rows": len(rows), "ok": len(ok),
            "distinct": len({r["schedule_key"] for r in ok}), "phases": phases}


def run_upstream(paths: dict, bench: str, batch: int, samples: Path) -> dict:
    shutil.rmtree(samples, ignore_errors=True)
    wall = upstream_loop.run_batches(paths, bench, batch, 2, samples)
    n, distinct = upstream_loop.count(samples)
    return {"wall": wall, "rows": 2 * batch, "ok": n, "distinct": distinct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="median3x3", choices=("median3x3", "gaussian5x5"))
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "farm-perf")
    args = parser.parse_args()
    paths = upstream_loop.prepare(args.work / "upstream")
    warm_caches(args.bench, args.work / "warm")
    cores = os.cpu_count()
    print(f"{args.bench}, {cores} cores; two rounds (farm) / two batches (upstream) each")
    print(f"{'batch':>5} {'side':<9} {'wall s':>7} {'rows':>5} {'ok':>4} {'distinct':>8} "
          f"{'distinct/h':>10}")
    for batch in args.batch:
        farm = run_farm(args.bench, batch, args.work / f"farm-b{batch}")
        up = run_upstream(paths, args.bench, batch, args.work / f"upstream-b{batch}")
        for side, r in (("farm", farm), ("upstream", up)):
            r["per_hour"] = 3600 * r["distinct"] / r["wall"]
            print(f"{batch:>5} {side:<9} {r['wall']:7.1f} {r['rows']:>5} {r['ok']:>4} "
                  f"{r['distinct']:>8} {r['per_hour']:10.0f}")
        print(f"{batch:>5} ratio farm/upstream: {farm['per_hour'] / up['per_hour']:.2f}x")
        p = farm["phases"]
        compile_s = p["autoschedule_s"] + p["precheck_s"] + p["codegen_s"] + p["link_s"]
        print(f"      farm time: rounds {p['wall_s']:.1f} s of {farm['wall']:.1f} s (the rest is "
              f"Ray start-up and the final re-timing); CPU summed over candidates: autoschedule "
              f"{p['autoschedule_s'] + p['precheck_s']:.1f} s, codegen {p['codegen_s']:.1f} s, "
              f"link {p['link_s']:.1f} s, timing {p['timing_s']:.1f} s, retrain "
              f"{p['retrain_s']:.1f} s")
        print(f"      physical limit of these rounds: compile {compile_s:.1f} s / {cores} cores "
              f"+ timing {p['timing_s']:.1f} s on the one device (compiles pause while it "
              f"times) = {compile_s / cores + p['timing_s']:.1f} s")


if __name__ == "__main__":
    main()
