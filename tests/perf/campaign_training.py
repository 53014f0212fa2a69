"""What a campaign round spends on retraining and acceptance, against its number of pipelines.

    python tests/perf/campaign_training.py [--pipelines 6 50] [--rounds 4] [--batch 16]

For each size: a campaign of that many pipelines with `--rounds` rounds of `--batch` samples
each, then the work the tuner does after a round (farm.tuning.loop._Tuning._accept): write the
newest round's .sample files, then farm.model.acceptance.decide with one pipeline held out (three
candidate models trained by Halide's trainer, judged on the held-out pipeline). Sizes are
measured interleaved, `--repeats` times each, and printed with their range.

The rows are real featurizations with synthetic runtimes: a random probe of each of the six
built-ins, autoscheduled here; pipeline k uses built-in k mod 6 with its pipeline features
scaled by 1 + k/100 (so it has its own pipeline id), and each sample perturbs the schedule
features. Runtimes are lognormal, so every pipeline has plenty of clear pairs and the
trainer runs (a pipeline with too few is skipped: that would measure nothing).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from farm.build import compiler
from farm.candidate import RANDOM_PROBE, CandidateSpec
from farm.machine import targets
from farm.model import acceptance, featurization, retrain, weights
from farm.pipelines import catalog
from farm.store.samples import SCHEMA


def templates() -> list[np.ndarray]:
    out = []
    for bench in catalog.builtin_benchmarks():
        spec = CandidateSpec(bench, targets.resolve(None), weights.baseline(), seed=1,
                             **RANDOM_PROBE)
        out.append(featurization.stages(compiler.autoschedule(spec).featurization).copy())
    return out


def campaign_rows(pipelines: int, rounds: int, batch: int, bases: list[np.ndarray],
                  rng) -> list[dict]:
    rows = []
    n = featurization.SCHEDULE_FEATURES
    for k in range(pipelines):
        base = bases[k % len(bases)].copy()
        base[:, n:] *= 1 + k / 100
        name = f"pipe{k:03d}"
        for r in range(1, rounds + 1):
            for i in range(batch):
                f = base.copy()
                f[:, :n] *= rng.uniform(0.5, 2.0, (f.shape[0], n))
                feats = f.astype("<f4").tobytes()
                rows.append({
                    "sample_id": f"camp-{name}-r{r:06d}-c{i:04d}", "run_id": "camp",
                    "round": r, "index": i, "benchmark": name,
                    "pipeline_id": featurization.pipeline_id(feats),
                    "schedule_id": (r - 1) * batch + i + 1, "status": "ok",
                    "runtime_ms": float(rng.lognormal(0, 0.5)), "runtimes_ms": [1.0],
                    "schedule_key": featurization.schedule_key(feats),
                    "featurization": feats})
    return rows


def one_round(rows: list[dict], rounds: int, start: weights.Weights) -> tuple[float, float]:
    """Seconds to write the newest round's .sample files, and to decide (train + judge)."""
    folder = Path(tempfile.mkdtemp(prefix="farm-campaign-"))
    files = retrain.SampleFiles(folder / "samples")
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    older = table.filter(pa.compute.less(table["round"], rounds))
    files.sync(older)  # the earlier rounds' files exist already in a running campaign
    t0 = time.perf_counter()
    files.sync(table)
    t1 = time.perf_counter()
    names = sorted(set(table["benchmark"].to_pylist()))
    settings = [replace(s, steps=retrain.DEFAULT_STEPS) for s in acceptance.SETTINGS]
    decision = acceptance.decide(table, "benchmark", names[rounds % len(names)], start, start,
                                 files, num_cores=32, settings=settings, seed=rounds)
    t2 = time.perf_counter()
    trained = [c for c in decision.candidates[1:] if c.weights_sha256]
    if not trained:
        raise SystemExit(f"nothing was trained: {decision.reason}")
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, nargs="+", default=[6, 50])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    bases = templates()
    start = weights.baseline()
    data = {n: campaign_rows(n, args.rounds, args.batch, bases, np.random.default_rng(n))
            for n in args.pipelines}
    times: dict[int, list[tuple[float, float]]] = {n: [] for n in args.pipelines}
    for rep in range(args.repeats):
        for n in args.pipelines:  # interleaved: the host's drift hits every size alike
            times[n].append(one_round(data[n], args.rounds, start))
            print(f"repeat {rep + 1}: {n} pipelines: write {times[n][-1][0]:.2f} s, "
                  f"train {len(acceptance.SETTINGS)} candidates + judge "
                  f"{times[n][-1][1]:.1f} s", flush=True)
    print(f"\n{args.rounds} rounds of {args.batch} samples per pipeline; the round after the "
          f"last, as farm.tuning.loop does it (median [min, max] of {args.repeats}):")
    for n in args.pipelines:
        write = [t[0] for t in times[n]]
        decide = [t[1] for t in times[n]]
        total = [a + b for a, b in times[n]]
        print(f"  {n:4d} pipelines, {len(data[n]):6d} samples: retraining + acceptance "
              f"{statistics.median(total):6.1f} s [{min(total):.1f}, {max(total):.1f}] "
              f"(files {statistics.median(write):.2f} s, decide "
              f"{statistics.median(decide):.1f} s)")


if __name__ == "__main__":
    main()
