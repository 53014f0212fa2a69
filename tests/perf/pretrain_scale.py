"""A pre-training at scale: what one round's commit, training and acceptance cost once a
device class holds 1,000 random pipelines and 16,000 samples.

Featurizations are real: each pipeline is one of the farm's random pipelines (seeds far
from any pre-training's), autoscheduled `--real` times with beam-1 probes; the rest of its
16 schedules perturb those schedule features (its pipeline features stay real). Runtimes are
synthetic. The run directory is written round by round as `farm pretrain` writes it (one
atomic file per round, compaction), then the post-commit work of one more round is timed
as the round loop does it: read the training columns, bring the .sample cache up to date,
train the three candidate models with Halide's trainer and judge them on the round's new
pipelines (farm.model.acceptance, unit "round").

    python tests/perf/pretrain_scale.py [--pipelines 1000] [--per-pipeline 16] [--real 2]

The featurizations are cached (FARM_CACHE_DIR/perf/): a rerun only times.
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from farm.build import compiler
from farm.candidate import RANDOM_PROBE, CandidateSpec
from farm.machine import targets
from farm.machine.cache import cache_dir
from farm.model import acceptance, featurization, retrain, weights
from farm.model.trainer import HalideTrainer
from farm.pipelines import catalog
from farm.store.rundir import RunDir
from farm.store.samples import TRAIN_COLUMNS

FIRST_SEED = 1_000_000  # far from the seeds a pre-training draws (0, 1, 2, ...)


def real_features(seed: int, count: int) -> list[bytes]:
    bench = catalog.resolve(f"random:seed={seed}")
    host = targets.resolve(None)
    out = []
    for k in range(count):
        spec = CandidateSpec(bench, host, weights.baseline(), seed=k + 1, **RANDOM_PROBE)
        out.append(compiler.autoschedule(spec).featurization)
    return out


def featurizations(pipelines: int, real: int) -> list[list[bytes]]:
    path = cache_dir("perf") / f"pretrain-scale-{pipelines}x{real}.parquet"
    if path.exists():
        table = pq.read_table(path)
        return [list(x) for x in table["features"].to_pylist()]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        found = pool.starmap(real_features, [(FIRST_SEED + i, real)
                                             for i in range(pipelines)])
    print(f"autoscheduled {pipelines} random pipelines x {real} probes for real "
          f"featurizations: {time.perf_counter() - started:.0f} s (cached in {path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"features": found}), path)
    return found


def schedules(real: list[bytes], count: int, rng) -> list[bytes]:
    """`count` featurizations of one pipeline: its real ones, then perturbed schedule
    features of them (the pipeline features are left as they are)."""
    out = list(real[:count])
    n = featurization.SCHEDULE_FEATURES
    while len(out) < count:
        f = featurization.stages(real[len(out) % len(real)]).copy()
        f[:, :n] *= rng.uniform(0.5, 2.0, (f.shape[0], n))
        out.append(f.astype("<f4").tobytes())
    return out


def rows_for(round_no: int, pipes: list[tuple[int, list[bytes]]], rng) -> list[dict]:
    rows = []
    for p, feats in pipes:
        scale = rng.lognormal(0, 1)
        for i, f in enumerate(feats):
            ms = float(scale * rng.lognormal(0, 0.5))
            rows.append({
                "sample_id": f"scale-p{p:05d}-c{i:04d}", "run_id": "scale", "round": round_no,
                "index": i, "benchmark": f"random:seed={FIRST_SEED + p},version=1",
                "pipeline_id": featurization.pipeline_id(f), "schedule_id": i + 1,
                "status": "ok", "runtime_ms": ms, "runtimes_ms": [ms] * 3,
                "schedule_key": featurization.schedule_key(f), "featurization": f,
                "schedule_source": "// a schedule of about this size\n" * 40,
                "created_at": datetime.now(UTC)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--per-pipeline", type=int, default=16)
    parser.add_argument("--per-round", type=int, default=8)
    parser.add_argument("--real", type=int, default=2, help="real featurizations per pipeline")
    parser.add_argument("--steps", type=int, default=retrain.DEFAULT_STEPS)
    args = parser.parse_args()
    real = featurizations(args.pipelines, args.real)
    rng = np.random.default_rng(0)
    run = RunDir(Path(tempfile.mkdtemp(prefix="farm-pretrain-scale-")))
    rounds = args.pipelines // args.per_round
    commit_s = []
    for r in range(1, rounds + 1):
        pipes = [(p, schedules(real[p], args.per_pipeline, rng))
                 for p in range((r - 1) * args.per_round, r * args.per_round)]
        rows = rows_for(r, pipes, rng)
        started = time.perf_counter()
        run.samples.commit_round(r, rows)
        run.samples.compact()
        commit_s.append(time.perf_counter() - started)
    files = run.samples.files()
    size = sum(p.stat().st_size for p in files) / 2**20
    print(f"{rounds} rounds of {args.per_round} pipelines x {args.per_pipeline}: "
          f"{rounds * args.per_round * args.per_pipeline} samples, {len(files)} files, "
          f"{size:.0f} MB; commit + compaction {1000 * np.mean(commit_s[-10:]):.0f} ms per "
          f"round at the end ({1000 * np.mean(commit_s[:10]):.0f} ms at the start)")
    started = time.perf_counter()
    table = run.samples.read(TRAIN_COLUMNS)
    read_s = time.perf_counter() - started
    files = run.sample_files
    started = time.perf_counter()
    files.sync(table)
    first_sync_s = time.perf_counter() - started
    started = time.perf_counter()
    files.sync(table)
    sync_s = time.perf_counter() - started
    print(f"read the training columns: {read_s:.1f} s ({table.nbytes / 2**20:.0f} MB); "
          f".sample cache: {first_sync_s:.1f} s to write all, {sync_s:.2f} s when only a "
          "round is new")
    trainer = HalideTrainer()
    base = weights.baseline()
    settings = [acceptance.Setting(s.name, s.start_from, s.rate, args.steps)
                for s in acceptance.SETTINGS]
    started = time.perf_counter()
    decision = trainer.decide(table, "round", rounds, base, base, files, num_cores=32,
                              settings=settings, seed=rounds, log_dir=None)
    decide_s = time.perf_counter() - started
    train_s = sum(j.train_s for j in decision.candidates)
    print(f"acceptance at {args.pipelines} pipelines, held out: round {rounds} "
          f"({args.per_round} pipelines, {decision.pairs} clear pairs): {decide_s:.1f} s in "
          f"all, of which training {train_s:.1f} s ({len(settings)} candidates x "
          f"{args.steps} steps) and judging {decide_s - train_s:.1f} s; {decision.reason}")
    driver_s = np.mean(commit_s[-10:]) + read_s + sync_s + decide_s
    print(f"per round at this scale: about {driver_s:.0f} s of driver work besides "
          "compiling and timing")


if __name__ == "__main__":
    main()
