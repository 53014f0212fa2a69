"""Does a pre-training's data add to real pipelines' data? For each leave-one-out group of a
campaign, a model trained with `farm evaluate`'s recipe (from the campaign's start weights,
rate 1e-3, 128 steps) on the campaign's other pipelines plus the first N pipelines of a
pre-training: an anchored model, which never saw the group it is for. Its weights go to
OUT/anchored-GROUP.weights, and the script prints the `farm evaluate CAMPAIGN --weights-for
...` command that times each pipeline with its anchored model beside its leave-one-out
model (trained on the same real rows without the random ones), in one run.

    python tests/perf/anchored.py CAMPAIGN PRETRAIN_DIR --out DIR [--pipelines N]

Training is work on the CPU: pause any timing first.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from farm.model import retrain, weights
from farm.model.trainer import HalideTrainer
from farm.paths import path_name
from farm.store.rundir import RunDir
from farm.workflows.evaluation import (
    COLUMNS,
    TRAIN_RATE,
    TRAIN_SEED,
    TRAIN_STEPS,
    make_groups,
    rows_of,
    training_rows,
)
from farm.workflows.pretrain import seed_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("campaign", type=Path)
    parser.add_argument("pretrain", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pipelines", type=int, help="the pre-training's first N (default all)")
    args = parser.parse_args()
    camp, pre = RunDir(args.campaign), RunDir(args.pretrain)
    cm, pm = camp.read_manifest(), pre.read_manifest()
    assert cm is not None and pm is not None, "both must be run directories"
    names = [p.name for p in cm.all_pipelines()]
    random_names = sorted((p.name for p in pm.all_pipelines()),
                          key=lambda n: seed_of(n) or 0)[:args.pipelines]
    real = camp.samples.read(COLUMNS)
    rand = pre.samples.read(COLUMNS)
    rand = retrain.capped(rand.filter(pc.is_in(
        rand["benchmark"], value_set=pa.array(random_names, pa.string()))), seed=TRAIN_SEED)
    start = weights.load(camp.weights_path(0))
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="farm-anchored-")  # removed at exit
    files = retrain.SampleFiles(tmp.name)
    print(f"{len(random_names)} random pipelines of {pre.path} ({rand.num_rows} rows) added to "
          f"each leave-one-out model of {camp.path}; {TRAIN_STEPS} steps at {TRAIN_RATE:g}")
    weights_for = []
    for group in make_groups(names):
        mine = retrain.capped(training_rows(real, names, group.members), seed=TRAIN_SEED)
        rows = pa.concat_tables([mine, rand])
        assert rows_of(rows, group.members) == 0, f"{group.name} leaked into its training"
        result = HalideTrainer().train(files, rows, start, steps=TRAIN_STEPS, rate=TRAIN_RATE,
                                       num_cores=cm.parallelism)
        assert result.weights is not None, f"{group.name}: the trainer gave no weights"
        path = args.out / f"anchored-{path_name(group.name)}.weights"
        weights.write(result.weights, path)
        print(f"{group.name}: {mine.num_rows} real rows + {rand.num_rows} random rows, loss "
              f"{result.loss} -> {path}")
        weights_for += [f"--weights-for {m}={path}" for m in group.members]
    print(f"\nfarm evaluate {camp.path} {' '.join(weights_for)} --out EVAL_DIR")


if __name__ == "__main__":
    main()
