"""The driver's own cost: synthetic devices (0.5 s per measurement, no CPU in Ray's
accounting) and synthetic compile tasks, for 1..64 devices.

    python tests/perf/scaling.py [--devices 1 2 4 8 16 32 64] [--per-device 10]

Prints device utilization (measuring time / (devices x wall)), the driver's CPU per sample
(the whole process, Ray's client threads included, and its event loop alone), how busy the
machine's CPUs were (Ray's own processes work for every call: on a small machine they, not
the driver, run out first); then the driver's capacity: 1000 / (driver process CPU ms per
sample) with devices and builds that cost nothing, the samples per second one driver could
feed; then the driver's memory over many committed rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import ray

from farm.candidate import CandidateSpec
from farm.devices.timing import TimingConfig
from farm.execution.pool import DevicePool
from farm.execution.scheduler import RoundScheduler, shared
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.search.plans import RoundPlan, SeenSchedules
from farm.store.records import Manifest
from farm.store.samples import SampleStore
from farm.testing import SyntheticBuilder, open_synthetic, synthetic_infos
from farm.tuning.rows import outcome_row

MEASURE_S = 0.5
COMPILE_S = 0.1


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def base_spec() -> CandidateSpec:
    return CandidateSpec(catalog.resolve("median3x3"), targets.resolve(None),
                         weights.baseline())


def synthetic_pool(n_devices: int, measure_s: float, compile_s: float, slots: int):
    # Each synthetic compile holds 1/slots of the machine's CPUs in Ray's accounting: Ray
    # runs `slots` at once, on as many worker processes, as on a cluster of that many cores.
    builder = SyntheticBuilder(compile_s, cpus=(os.cpu_count() or 1) / slots)
    pool = DevicePool.create(synthetic_infos(n_devices, seconds=measure_s), builder,
                             compile_slots=slots, opener=open_synthetic)
    ray.get([h.actor.info.remote() for h in pool.handles])  # all actors up before timing
    return pool


def one_round(n_devices: int, per_device: int) -> dict:
    # Enough compile capacity: each device needs a new artifact every MEASURE_S.
    slots = 2 * max(1, int(n_devices * COMPILE_S / MEASURE_S)) + 2
    pool = synthetic_pool(n_devices, MEASURE_S, COMPILE_S, slots)
    scheduler = RoundScheduler(pool, threads=1, timing=TimingConfig(), compile_timeout_s=600)
    plan = RoundPlan("scale", 1, base_spec(), n_devices * per_device)
    seen = shared(SeenSchedules())
    # Start what a long run has running: each device actor's first compile task costs it a
    # fraction of a second, and Ray starts a worker process for each compile held at once.
    scheduler.run(RoundPlan("warm", 1, base_spec(), 2 * n_devices * pool.depth), seen=seen)
    cpu0, thread0, wall0 = time.process_time(), time.thread_time(), time.monotonic()
    busy0, total0 = machine_busy()
    outcomes = scheduler.run(plan, seen=seen)
    busy1, total1 = machine_busy()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    thread = time.thread_time() - thread0
    assert all(o.status == "ok" for o in outcomes)
    work = len(outcomes) * MEASURE_S
    pool.shutdown()
    return {"devices": n_devices, "samples": len(outcomes), "wall": wall,
            "utilization": work / (n_devices * wall), "driver_ms": 1000 * cpu / len(outcomes),
            "loop_ms": 1000 * thread / len(outcomes),
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
            "ideal_wall": per_device * MEASURE_S + COMPILE_S}


def driver_capacity(n_devices: int, slots: int, samples: int) -> dict:
    """Devices and builds that take no time: the driver (and Ray) are all that work. The
    pool is sized for `slots` compile CPUs (how many candidates each device holds)."""
    pool = synthetic_pool(n_devices, 0.0, 0.0, slots)
    scheduler = RoundScheduler(pool, threads=1, timing=TimingConfig(), compile_timeout_s=600)
    seen = shared(SeenSchedules())
    scheduler.run(RoundPlan("warm", 1, base_spec(), 2 * n_devices), seen=seen)
    cpu0, wall0 = time.process_time(), time.monotonic()
    outcomes = scheduler.run(RoundPlan("capacity", 1, base_spec(), samples), seen=seen)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    assert all(o.status == "ok" for o in outcomes)
    pool.shutdown()
    return {"driver_ms": 1000 * cpu / samples, "capacity": samples / cpu,
            "achieved": samples / wall, "depth": pool.depth, "chunk": pool.chunk}


def idle_cost(n_devices: int, seconds: float = 10.0) -> float:
    """How busy the machine is with `n_devices` idle device actors alive (Ray's own
    per-process cost), as a fraction of all its CPUs."""
    pool = synthetic_pool(n_devices, MEASURE_S, COMPILE_S, 2)
    time.sleep(2)
    busy0, total0 = machine_busy()
    time.sleep(seconds)
    busy1, total1 = machine_busy()
    pool.shutdown()
    return (busy1 - busy0) / max(1, total1 - total0)


def memory_over_rounds(rounds: int, batch: int, n_devices: int) -> list[tuple[int, float]]:
    """Plan, schedule, record and commit `rounds` rounds as the tuner does; RSS per round."""
    pool = synthetic_pool(n_devices, 0.01, 0.0, 8)
    scheduler = RoundScheduler(pool, threads=1, timing=TimingConfig(), compile_timeout_s=600)
    store = SampleStore(Path(tempfile.mkdtemp(prefix="farm-scale-")) / "samples")
    manifest = Manifest("scale", "median3x3", "median3x3", "x", "t", "t", batch, 32, "w", "now")
    seen = shared(SeenSchedules())
    trace = []
    for r in range(1, rounds + 1):
        outcomes = scheduler.run(RoundPlan("scale", r, base_spec(), batch), seen=seen)
        store.commit_round(r, [outcome_row(manifest, r, o) for o in outcomes])
        store.compact()
        if r in (1, 2, 5) or r % (rounds // 8 or 1) == 0:
            trace.append((r * batch, rss_mb()))
    pool.shutdown()
    return trace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--per-device", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    print(f"synthetic devices ({MEASURE_S} s per measurement), synthetic compiles "
          f"({COMPILE_S} s), {args.per_device} samples per device")
    print(f"{'devices':>7} {'samples':>7} {'wall s':>7} {'ideal s':>7} {'utilization':>11} "
          f"{'driver CPU ms/sample':>20} {'of it the loop':>14} {'machine busy':>12}")
    # Before any work: afterwards Ray keeps idle workers around for a while.
    time.sleep(5)
    cpus, base, idle = os.cpu_count(), idle_cost(0), idle_cost(32)
    time.sleep(5)
    one_round(2, 2)  # start Ray's worker processes before anything is timed
    for n in args.devices:
        r = one_round(n, args.per_device)
        print(f"{r['devices']:>7} {r['samples']:>7} {r['wall']:7.2f} {r['ideal_wall']:7.2f} "
              f"{r['utilization']:11.1%} {r['driver_ms']:20.2f} {r['loop_ms']:14.2f} "
              f"{r['machine_busy']:12.0%}",
              flush=True)
    print("\ndriver capacity: zero-cost devices and builds, 2000 samples; 1000 / driver CPU ms "
          "per sample")
    print(f"{'devices':>7} {'compile slots':>13} {'held':>4} {'per call':>8} "
          f"{'driver CPU ms/sample':>20} {'capacity samples/s':>18} {'achieved here':>13}")
    for n, slots in ((4, 8), (4, 64), (16, 1000)):
        c = driver_capacity(n, slots, 2000)
        print(f"{n:>7} {slots:>13} {c['depth']:>4} {c['chunk']:>8} {c['driver_ms']:20.3f} "
              f"{c['capacity']:18.0f} {c['achieved']:13.0f}", flush=True)
    print(f"\nRay's own cost, nothing scheduled: machine busy {base:.0%} with no device actor, "
          f"{idle:.0%} with 32 idle ones ({100 * cpus * (idle - base) / 32:.1f}% of a core "
          f"each, {cpus} cores)")
    print(f"\ndriver memory over {args.rounds} committed rounds of 64 samples:")
    for samples, mb in memory_over_rounds(args.rounds, 64, 8):
        print(f"  after {samples:>6} samples: RSS {mb:6.1f} MB")
    ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
