"""Two jobs timing on one phone, with and without device leases, and a killed holder.

The phone is tests/fake_adb's stand-in: it serializes nothing (two adb clients' shell
commands run at once, as on a real phone) and logs each shell command's start and end.
Each "job" is a process that times a real benchmark binary, built for this host, on the
phone through the farm's AndroidDevice (`--jobs-run N` timings each), as a job's device
actor does: with its lease (farm.execution.leases), or without (`--no-leases`, as before
leases). Printed: the seconds of overlap between the two jobs' benchmark runs, and each
job's share of the phone's timing time per 10 s window.

`--kill`: one job takes the lease and is killed with -9 while it holds it; printed: how
many seconds the other waited for the device after the kill (goal: at most 10).

    python tests/perf/shared_phone.py [--runs 40] [--no-leases] [--kill]

It times real binaries: run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

FAKE_ADB = Path(__file__).resolve().parents[1] / "fake_adb"
NODE = socket.gethostname().split(".")[0]
SERIAL = "SHARED1"


def build_binary() -> bytes:
    from farm.build import compiler
    from farm.candidate import RANDOM_PROBE, CandidateSpec
    from farm.machine import targets
    from farm.model import weights
    from farm.pipelines import catalog

    spec = CandidateSpec(catalog.resolve("dilate3x3"), targets.resolve(None),
                         weights.baseline(), seed=3, **RANDOM_PROBE)
    result, binary, _ = compiler.build(spec)
    if not result.ok:
        sys.exit(f"cannot build the benchmark binary: {result.error}")
    return binary


def job(name: str, binary: bytes, runs: int, leases: bool, hold_and_wait: bool,
        ready=None) -> None:
    """One job: `runs` timings on the shared phone (with its lease unless `leases` is
    False). `hold_and_wait`: take the lease, say so on `ready`, and sleep holding it."""
    from farm.devices.android import AndroidDevice
    from farm.devices.base import DeviceInfo
    from farm.devices.timing import TimingConfig
    from farm.execution.leases import Holder, Lease

    info = DeviceInfo(id=f"{SERIAL}@{NODE}", kind="android", node=NODE, serial=SERIAL)
    device = AndroidDevice(info)
    lease = Lease(info.id, Holder.here(name))
    if hold_and_wait:
        with lease.use():
            ready.set()
            time.sleep(3600)
    timing = TimingConfig(repeats=5, min_sample_ms=2, warmup_ms=2)
    for _ in range(runs):
        with lease.use() if leases else nullcontext():
            m = device.run(binary, 1, timing)
            if not m.ok:
                sys.exit(f"{name}: {m.status}: {m.error}")
    lease.release()
    device.close()


def overlap_and_shares(times: list[dict]) -> tuple[float, list[tuple[float, dict]]]:
    """Seconds during which two jobs' benchmark runs overlapped; each job's share of the
    phone's timing time per 10 s window."""
    runs = sorted((t["start"], t["end"], t["job"]) for t in times if "./bench-" in t["command"])
    overlap = 0.0
    for i, (_, e1, j1) in enumerate(runs):
        for s2, e2, j2 in runs[i + 1:]:
            if s2 >= e1:
                break
            if j1 != j2:
                overlap += min(e1, e2) - s2
    if not runs:
        return overlap, []
    t0, t1 = runs[0][0], max(e for _, e, _ in runs)
    windows = []
    w = t0
    while w < t1:
        busy: dict[str, float] = {}
        for s, e, j in runs:
            cut = max(0.0, min(e, w + 10) - max(s, w))
            busy[j] = busy.get(j, 0.0) + cut
        total = sum(busy.values())
        windows.append((w - t0, {j: b / total for j, b in busy.items()} if total else {}))
        w += 10
    return overlap, windows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40, help="timings per job (default 40)")
    ap.add_argument("--no-leases", action="store_true", help="time without leases")
    ap.add_argument("--kill", action="store_true", help="kill a job holding the lease")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="farm-shared-phone-"))
    config = tmp / "adb.json"
    config.write_text(json.dumps({"root": str(tmp / "phones"), "devices": [
        {"serial": SERIAL, "state": "device", "props": {"ro.product.model": "Pixel 7",
                                                        "ro.soc.model": "GS201"}}]}))
    os.environ.update({"PATH": f"{FAKE_ADB}{os.pathsep}{os.environ['PATH']}",
                       "FAKE_ADB_CONFIG": str(config), "FAKE_ADB_TIMES": str(tmp / "times"),
                       "FARM_LEASE_DIR": str(tmp / "leases")})
    for var in ("FARM_ADB", "FARM_HEXAGON_RUNTIME"):
        os.environ.pop(var, None)
    binary = build_binary()
    ctx = multiprocessing.get_context("spawn")
    if args.kill:
        ready = ctx.Event()
        holder = ctx.Process(target=job, args=("killed-job", binary, 0, True, True, ready))
        holder.start()
        ready.wait(60)
        waiter = ctx.Process(target=job, args=("waiting-job", binary, 1, True, False))
        waiter.start()
        time.sleep(2.0)  # it waits behind the holder
        killed_at = time.time()
        os.kill(holder.pid, signal.SIGKILL)
        waiter.join(120)
        from farm.execution.leases import history

        lines = history(f"{SERIAL}@{NODE}", tmp / "leases")
        died = next(x for x in lines if x["ended"] == "holder died")
        got = next(x for x in lines if x["run"] == "waiting-job")
        from datetime import datetime

        start = datetime.fromisoformat(got["from"]).timestamp()
        print(f"killed holder: the waiting job got the phone {start - killed_at:.2f} s after "
              f"the kill (goal: at most 10); logged: {died['run']} {died['from']} .. "
              f"{died['to']} ({died['ended']})")
        return 0
    jobs = [ctx.Process(target=job, args=(f"job-{n}", binary, args.runs, not args.no_leases,
                                          False)) for n in "ab"]
    for p in jobs:
        p.start()
    for p in jobs:
        p.join()
    times = [json.loads(line) for line in (tmp / "times").read_text().splitlines()]
    # each adb process's parent is the job that ran it
    order = {p.pid: f"job-{n}" for p, n in zip(jobs, "ab", strict=True)}
    for t in times:
        t["job"] = order.get(t["ppid"], "?")
    overlap, windows = overlap_and_shares(times)
    bench = [t for t in times if "./bench-" in t["command"]]
    print(f"{'without' if args.no_leases else 'with'} leases: {len(bench)} benchmark runs "
          f"on one phone by 2 jobs; overlap between the jobs' runs: {overlap:.2f} s")
    for start, shares in windows:
        print(f"  {start:5.0f}-{start + 10:.0f} s: " + ", ".join(
            f"{j} {s:.0%}" for j, s in sorted(shares.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
