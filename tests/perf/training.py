"""Training time against steps and samples, and what acceptance costs per round.

    python tests/perf/training.py [--sizes 1000 10000 100000] [--steps 1 32 128]

For each size: (1) Halide's trainer on every sample with N steps ("epochs"), files already
written, to separate loading from stepping; (2) the previous release's retraining per round
(write every .sample file again, then the trainer with its epoch rule); (3) this release's
per-round retraining plus acceptance (write the newest round's files only, train the
candidates on at most TRAIN_CAP schedules, judge them on the newest round).
Synthetic rows: real median3x3 featurizations with perturbed schedule features.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))

from datascale import rows_for, template

from farm.model import acceptance, featurization, retrain, weights
from farm.store.samples import SCHEMA, TRAIN_COLUMNS

BATCH = 32


def old_epochs(batch: int, samples: int) -> int:
    """The previous release's rule (farm/model/retrain.py default_epochs)."""
    return max(1, min(batch, 32 * 4096 // max(1, samples)))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 32, 128])
    args = parser.parse_args()
    base = featurization.stages(template()).copy()
    start_w = weights.baseline()
    print(f"{base.shape[0]} stages, {base.size * 4} featurization bytes per sample; "
          f"TRAIN_CAP {retrain.TRAIN_CAP}, {len(acceptance.SETTINGS)} candidate settings")
    for size in args.sizes:
        measure(size, args.steps, base, start_w)


def measure(size: int, step_counts: list[int], base, start_w) -> None:
    rng = np.random.default_rng(size)
    rounds = max(2, size // BATCH)
    rows = [r for k in range(1, rounds + 1) for r in rows_for(k, BATCH, base, rng)]
    table = pa.Table.from_pylist(rows, schema=SCHEMA).select(TRAIN_COLUMNS)
    n = table.num_rows
    with tempfile.TemporaryDirectory(prefix="farm-train-perf-") as tmp:
        files = retrain.SampleFiles(Path(tmp) / "all")
        write_s, _ = timed(lambda: files.sync(table))
        print(f"\n{n} samples: writing every .sample file {write_s:.1f} s")
        for steps in step_counts:
            s, r = timed(lambda steps=steps: retrain.train(
                files, table, start_w, steps=steps, rate=1e-4, num_cores=32))
            print(f"  trainer, {steps:>4} steps on all {n}: {s:6.1f} s "
                  f"(loss {r.loss:.3f})")
        # previous release, one round: rewrite all files, then train old_epochs steps
        old = retrain.SampleFiles(Path(tmp) / "old")
        ep = old_epochs(BATCH, n)
        s_old, _ = timed(lambda: (old.sync(table), retrain.train(
            old, table, start_w, steps=ep, rate=1e-4, num_cores=32)))
        print(f"  previous release, one round's retraining ({ep} epochs, files "
              f"rewritten): {s_old:.1f} s")
        # this release, one round: the newest round's files are new, the rest cached
        newest = rounds
        warm = retrain.SampleFiles(Path(tmp) / "new")
        warm.sync(table.filter(pa.compute.not_equal(table["round"], newest)))
        s_new, d = timed(lambda: acceptance.decide(
            table, "round", newest, start_w, start_w, warm, num_cores=32))
        print(f"  this release, one round's retraining + acceptance: {s_new:.1f} s "
              f"= {s_new / s_old:.2f}x the previous ({d.accepted}: {d.reason[:60]}...)")


if __name__ == "__main__":
    main()
