"""How many interleaved re-timings `farm bench` needs for a verdict on a true 10% difference.

    python tests/perf/verdicts.py [--bench median3x3] [--commands 10] [--retimes 20]

Builds beam-32 of BENCH with the baseline weights once and re-times that one binary as two
schedules, A and B, interleaved, as `farm bench` does. A and B are the same code, so every
difference between them is this machine's noise; scaling B's times by 1.10 makes a true 10%
difference under that real noise. For each number of re-timings (prefixes of each command's
sequence) it counts, over --commands repeats of the command, how often the verdict on B*1.10
vs A says "slower" (power) and how often A vs B unscaled is not "indistinguishable" (false
alarms; 5% expected at 95% confidence).
"""

from __future__ import annotations

import argparse
import os

from farm.candidate import BEAM_SEARCH, CandidateSpec
from farm.devices.timing import TimingConfig
from farm.execution.session import DeviceSession
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.stats import verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="median3x3")
    parser.add_argument("--commands", type=int, default=10)
    parser.add_argument("--retimes", type=int, default=20)
    args = parser.parse_args()
    spec = CandidateSpec(catalog.resolve(args.bench), targets.resolve(None), weights.baseline(),
                         **BEAM_SEARCH)
    runs = []
    with DeviceSession() as session:  # the path `farm bench` takes
        info, target = session.pick(None, None)
        pool = session.pool([info], target)
        [(built, binary, _)] = pool.build([spec], 900)
        assert built is not None and built.result.ok, built
        for c in range(args.commands):
            times = pool.retime({"A": binary, "B": binary}, spec.parallelism, TimingConfig(),
                                args.retimes)
            runs.append(times)
            print(f"command {c + 1}: A median {verdict.median(times['A']):.3f} ms, "
                  f"B median {verdict.median(times['B']):.3f} ms", flush=True)
    print(f"\n{args.bench}, {os.cpu_count()} cores; {args.commands} commands")
    print(f"{'re-timings':>10} {'10% detected':>13} {'A/A alarms':>11}  typical interval (B*1.1/A)")
    for n in range(5, args.retimes + 1, 5):
        hits = alarms = 0
        widths = []
        for times in runs:
            a, b = times["A"][:n], times["B"][:n]
            shifted = verdict.compare([x * 1.1 if x else None for x in b], a)
            hits += shifted.word == verdict.SLOWER
            alarms += verdict.compare(b, a).word != verdict.SAME
            widths.append((shifted.low, shifted.high))
        lo = sorted(w[0] for w in widths)[len(widths) // 2]
        hi = sorted(w[1] for w in widths)[len(widths) // 2]
        print(f"{n:>10} {hits:>9}/{len(runs):<3} {alarms:>7}/{len(runs):<3}  [{lo:.2f}, {hi:.2f}]")


if __name__ == "__main__":
    main()
