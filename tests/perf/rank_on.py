"""How well do weights order the schedules measured on real pipelines? For each weights
file, per pipeline of RUN_DIR, the share of its clearly ordered schedule pairs (one 1.1x
apart or more, each schedule at its fastest runtime) that the model predicts in the right
order: the held-out rank acceptance uses, computed on a run none of the weights need have
seen. Beside `farm evaluate --on`, which times what beam search does with each model, it
says whether a model that plans badly for a pipeline also misorders its schedules.

    python tests/perf/rank_on.py RUN_DIR WEIGHTS [WEIGHTS ...] [--label NAME ...]

Prediction only (Halide's cost model, no compiling or timing); seconds of CPU per model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from farm.model import acceptance, weights
from farm.store.rundir import RunDir
from farm.store.samples import TRAIN_COLUMNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--label", action="append", default=[],
                        help="a column label per weights file, in order (default: its name)")
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    m = run.read_manifest()
    if m is None:
        parser.error(f"{run.path} is not a run directory")
    table = run.samples.read(TRAIN_COLUMNS)
    labels = args.label + [w.stem for w in args.weights[len(args.label):]]
    models = [weights.load(w) for w in args.weights]
    names = sorted(set(table["benchmark"].to_pylist()))
    print(f"{'pipeline':14s} {'pairs':>6s}  " + "  ".join(f"{x[:14]:>14s}" for x in labels))
    means = np.full((len(names), len(models)), np.nan)  # a pipeline without pairs: no rank
    for i, name in enumerate(names):
        ev = acceptance.Evidence.of(table.filter(pc.equal(table["benchmark"],
                                                          pa.scalar(name, pa.string()))))
        if ev.n_pairs == 0:
            continue
        for j, model in enumerate(models):
            means[i, j] = ev.accuracy(ev.concordant(model, m.parallelism))
        print(f"{name[:14]:14s} {ev.n_pairs:6d}  "
              + "  ".join(f"{a:14.3f}" for a in means[i]))
    print(f"{'mean':14s} {'':6s}  " + "  ".join(f"{a:14.3f}" for a in np.nanmean(means, axis=0)))


if __name__ == "__main__":
    main()
