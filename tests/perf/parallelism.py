"""Which --parallelism should be the default? Beam-32 schedules made with each
parallelism P, timed with P Halide threads, on this host.

    python tests/perf/parallelism.py [BENCH ...]

Prints, per benchmark, the median over 3 harness runs of each run's best ms.
"""

import statistics
import sys

from farm.build import compiler
from farm.candidate import BEAM_SEARCH, CandidateSpec
from farm.devices.host import local_host_device
from farm.devices.timing import TimingConfig
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog

PARALLELISMS = (1, 2, 4, 8, 16, 32, 64)


def main(names):
    device = local_host_device()
    target = targets.resolve(None)
    baseline = weights.baseline()
    print(f"host: {device.info.model}")
    print("benchmark    " + "".join(f"{'P=' + str(p):>9}" for p in PARALLELISMS))
    for name in names:
        row = []
        for p in PARALLELISMS:
            spec = CandidateSpec(catalog.resolve(name), target, baseline, parallelism=p,
                                 **BEAM_SEARCH)
            result, binary, _ = compiler.build(spec)
            assert result.ok, result.error
            runs = [device.run(binary, p, TimingConfig()).best_ms for _ in range(3)]
            row.append(statistics.median(runs))
        best = min(row)
        print(f"{name:<13}" + "".join(f"{ms:9.3f}" for ms in row)
              + f"   best P={PARALLELISMS[row.index(best)]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or [b.name for b in catalog.builtin_benchmarks()])
