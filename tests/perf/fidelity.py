"""Timing fidelity: one artifact re-timed 10 times on the host while compiles run, with and
without the farm's isolation (compile work paused while the device times).

    python tests/perf/fidelity.py [--bench median3x3] [--retimes 10] [--compilers 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

from farm.build import compiler
from farm.candidate import BEAM_SEARCH, RANDOM_PROBE, CandidateSpec
from farm.devices import gate
from farm.devices.host import HostDevice, host_info
from farm.devices.timing import TimingConfig
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog


def compile_forever(bench: str, worker: int, stop) -> None:
    """What a Ray compile worker does: build random candidates, registered with the gate."""
    seed = worker * 100_000
    while not stop.is_set():
        seed += 1
        spec = CandidateSpec(catalog.resolve(bench), targets.resolve(None), weights.baseline(),
                             seed=seed, **RANDOM_PROBE)
        with gate.compiling():
            compiler.build(spec)


def retime(device: HostDevice, binary: bytes, n: int) -> list[float]:
    return [device.run(binary, 32, TimingConfig()).best_ms for _ in range(n)]


def noise_floor(n: int) -> list[float]:
    """The machine's own noise: fixed single-threaded work, timed as the harness times (best
    of 10 repeats, ~10 ms each here), `n` times. No timing method beats this floor."""
    def best_ms() -> float:
        times = []
        for _ in range(10):
            start = time.perf_counter()
            sum(range(400_000))
            times.append(1000 * (time.perf_counter() - start))
        return min(times)

    return [best_ms() for _ in range(n)]


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="median3x3")
    parser.add_argument("--retimes", type=int, default=10)
    parser.add_argument("--compilers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    spec = CandidateSpec(catalog.resolve(args.bench), targets.resolve(None), weights.baseline(),
                         **BEAM_SEARCH)
    result, binary, _ = compiler.build(spec)
    assert result.ok, result.error
    print(f"{args.bench} beam-32, re-timed {args.retimes} times (each the best of "
          f"{TimingConfig().repeats} repeats), {args.compilers} compile processes running")
    print(f"{'condition':<34} {'mean ms':>8} {'min ms':>8} {'max ms':>8} {'CV':>7}")
    rows = [("noise floor (fixed Python work)", noise_floor(args.retimes)),
            ("quiet machine (no compiles)", retime(HostDevice(host_info(), "none"), binary,
                                                   args.retimes))]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    workers = [ctx.Process(target=compile_forever, args=(args.bench, i, stop), daemon=True)
               for i in range(args.compilers)]
    for w in workers:
        w.start()
    try:
        for isolation, label in (("none", "compiles running, no isolation"),
                                 ("pause", "compiles running, paused to time")):
            rows.append((label, retime(HostDevice(host_info(), isolation), binary,
                                       args.retimes)))
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.kill()
    for label, values in rows:
        print(f"{label:<34} {statistics.mean(values):8.3f} {min(values):8.3f} "
              f"{max(values):8.3f} {cv(values):7.1%}")


if __name__ == "__main__":
    main()
