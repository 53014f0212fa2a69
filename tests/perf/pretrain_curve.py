"""The learning curve of a pre-training: the held-out rank of the weights that planned each
round, on that round's new pipelines (never trained on), against the pipelines trained on
before it; with the round's acceptance and beam check.

With --offline it also trains models afresh from the run's start weights on the first N of
its pipelines (N doubling), with several recipes, and ranks the last --held-out pipelines
(none of them trained on) with each: how the held-out rank grows with the pipelines seen,
whatever the acceptance decided during the run. --save DIR keeps each such model's weights
(`offline-N-STEPS-RATE.weights`), to judge on real pipelines with `farm evaluate PRETRAIN_DIR
--on ... --judge FILE`. --with OTHER_DIR adds every pipeline of another pre-training (another
family, say) to each offline model's training rows: a mixed model, ranked on PRETRAIN_DIR's
held-out pipelines. Training is work on the CPU: pause any timing first.

    python tests/perf/pretrain_curve.py PRETRAIN_DIR [--png curve.png]
        [--offline] [--held-out 32] [--steps 32,128,512] [--rates 1e-4,1e-3]
        [--sizes 8,16,...] [--save DIR] [--with OTHER_DIR ...]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from farm.model import acceptance, retrain, weights
from farm.model.trainer import HalideTrainer
from farm.report.output import pyplot, save_figure
from farm.store.rundir import RunDir
from farm.store.samples import TRAIN_COLUMNS
from farm.workflows.pretrain import curve, seed_of


def offline(run: RunDir, held_out: int, steps: list[int], rates: list[float],
            sizes: list[int] | None = None, save: Path | None = None,
            others: Sequence[RunDir] = ()) -> None:
    m = run.read_manifest()
    assert m is not None, f"{run.path} is not a run directory"
    names = sorted((p.name for p in m.all_pipelines()), key=lambda n: seed_of(n) or 0)
    table = run.samples.read(TRAIN_COLUMNS)
    held, pool = names[-held_out:], names[:-held_out]
    evidence = acceptance.Evidence.of(table.filter(pc.is_in(
        table["benchmark"], value_set=pa.array(held, pa.string()))))
    start = weights.load(run.weights_path(0))
    files = run.sample_files
    extra = [retrain.capped(o.samples.read(TRAIN_COLUMNS)) for o in others]
    if extra:  # the runs' rows in one throwaway folder of .sample files
        tmp = tempfile.TemporaryDirectory(prefix="farm-curve-")  # removed at exit
        files = retrain.SampleFiles(tmp.name)
        print(f"with {sum(t.num_rows for t in extra)} rows of "
              f"{', '.join(str(o.path) for o in others)}")
    files.sync(table)
    base = evidence.accuracy(evidence.concordant(start, m.parallelism))
    print(f"\noffline: held out the last {len(held)} pipelines ({evidence.n_pairs} clear "
          f"pairs); the start weights rank {base:.3f} of them right")
    print("pipelines trained on  rate     steps  held-out rank  vs start")
    for n in sizes or doubling(len(pool)):
        rows = pa.concat_tables([retrain.capped(table.filter(pc.is_in(
            table["benchmark"], value_set=pa.array(pool[:n], pa.string())))), *extra])
        for rate in rates:
            for k in steps:
                result = HalideTrainer().train(files, rows, start, steps=k, rate=rate,
                                               num_cores=m.parallelism)
                if result.weights is None:
                    continue
                acc = evidence.accuracy(evidence.concordant(result.weights, m.parallelism))
                print(f"{n:20d}  {rate:<7g}  {k:5d}  {acc:13.3f}  {acc - base:+.3f}",
                      flush=True)
                if save:
                    save.mkdir(parents=True, exist_ok=True)
                    weights.write(result.weights, save / f"offline-{n}-{k}-{rate:g}.weights")


def doubling(most: int) -> list[int]:
    """8, 16, 32, ... and then `most`."""
    sizes, n = [], 8
    while n <= most:
        sizes.append(n)
        n = most if n < most < 2 * n else 2 * n
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--png", type=Path, help="also plot the curve to this file")
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--held-out", type=int, default=32)
    parser.add_argument("--steps", default="32,128,512")
    parser.add_argument("--rates", default="1e-4,1e-3")
    parser.add_argument("--sizes", help="pipelines trained on, e.g. 64,224 (default: doubling)")
    parser.add_argument("--save", type=Path, help="keep the offline models' weights here")
    parser.add_argument("--with", dest="others", type=Path, action="append", default=[],
                        help="also train each offline model on every pipeline of this run")
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    points = curve(run)
    print("round  pipelines trained on  held-out rank  accepted       beam check")
    for r, n, rank in points:
        rec = run.read_round(r)
        acc = rec.acceptance if rec else None
        check = rec.beam_check if rec else None
        accepted = acc.accepted if acc else "-"
        checked = "-" if check is None else ("passed" if check.passed else "failed")
        print(f"{r:5d}  {n:20d}  {rank:13.3f}  {accepted:13s}  {checked}")
    if args.png and points:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([n for _, n, _ in points], [a for _, _, a in points], marker="o")
        ax.set(xlabel="random pipelines trained on", ylabel="held-out rank on new pipelines",
               title=f"pre-training {run.path.name}")
        ax.grid(alpha=0.3)
        print(save_figure(fig, args.png))
    if args.offline:
        offline(run, args.held_out, [int(x) for x in args.steps.split(",")],
                [float(x) for x in args.rates.split(",")],
                [int(x) for x in args.sizes.split(",")] if args.sizes else None, args.save,
                [RunDir(o) for o in args.others])


if __name__ == "__main__":
    main()
