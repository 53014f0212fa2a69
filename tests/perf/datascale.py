"""Data at scale: a run of 100,000 samples in 1,000 rounds, written as the tuner writes
(one atomic file per round, compaction), then read back, turned into the run's .sample cache
and trained on with Halide's trainer as one candidate model of a round is.

    python tests/perf/datascale.py [--rounds 1000] [--batch 100] [--steps 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from farm.build import compiler
from farm.candidate import RANDOM_PROBE, CandidateSpec
from farm.machine import targets
from farm.model import featurization, retrain, weights
from farm.pipelines import catalog
from farm.store.samples import TRAIN_COLUMNS, SampleStore


def template() -> bytes:
    spec = CandidateSpec(catalog.resolve("median3x3"), targets.resolve(None),
                         weights.baseline(), seed=1, **RANDOM_PROBE)
    return compiler.autoschedule(spec).featurization


def rows_for(round_no: int, batch: int, base: np.ndarray, rng) -> list[dict]:
    rows = []
    for i in range(batch):
        f = base.copy()
        n = featurization.SCHEDULE_FEATURES
        f[:, :n] *= rng.uniform(0.5, 2.0, (f.shape[0], n))
        feats = f.astype("<f4").tobytes()
        rows.append({"sample_id": f"scale-r{round_no:06d}-c{i:04d}", "run_id": "scale",
                     "round": round_no, "index": i, "benchmark": "median3x3",
                     "pipeline_id": featurization.pipeline_id(feats),
                     "schedule_id": (round_no - 1) * batch + i + 1, "status": "ok",
                     "runtime_ms": float(rng.lognormal(0, 0.5)),
                     "runtimes_ms": [1.0] * 20, "schedule_key": featurization.schedule_key(feats),
                     "schedule_source": "// a schedule of about this size\n" * 40,
                     "featurization": feats, "created_at": datetime.now(UTC)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=retrain.DEFAULT_STEPS)
    args = parser.parse_args()
    base = featurization.stages(template()).copy()
    rng = np.random.default_rng(0)
    store = SampleStore(Path(tempfile.mkdtemp(prefix="farm-data-")) / "samples")
    total = args.rounds * args.batch
    print(f"{total} samples of {base.size * 4} featurization bytes, {args.rounds} rounds "
          f"of {args.batch}")
    commit_s = 0.0
    for r in range(1, args.rounds + 1):
        rows = rows_for(r, args.batch, base, rng)
        start = time.perf_counter()
        store.commit_round(r, rows)
        store.compact()
        commit_s += time.perf_counter() - start
    files = store.files()
    size = sum(p.stat().st_size for p in files) / 2**20
    print(f"commit + compaction: {commit_s:.1f} s in all, {1000 * commit_s / args.rounds:.1f} "
          f"ms per round; {len(files)} files, {size:.0f} MB on disk")
    start = time.perf_counter()
    table = store.read(TRAIN_COLUMNS)
    print(f"read what retraining needs: {time.perf_counter() - start:.1f} s "
          f"({table.nbytes / 2**20:.0f} MB in memory, {table.num_rows} rows)")
    with tempfile.TemporaryDirectory() as tmp:
        files = retrain.SampleFiles(Path(tmp))
        start = time.perf_counter()
        files.sync(table)
        print(f"write the .sample cache (once per sample): {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        files.sync(table)
        print(f"bring the cache up to date when nothing is new: "
              f"{time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        capped = retrain.capped(table)
        result = retrain.train(files, capped, weights.baseline(), steps=args.steps,
                               rate=1e-4, num_cores=32)
        print(f"train {args.steps} steps on {result.samples} samples (capped from "
              f"{table.num_rows}): {time.perf_counter() - start:.1f} s in all "
              f"(trainer loss {result.loss})")


if __name__ == "__main__":
    main()
