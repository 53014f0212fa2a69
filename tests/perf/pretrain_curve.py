"""The learning curve of a pre-training: the held-out rank of the weights that planned each
round, on that round's new pipelines (never trained on), against the pipelines trained on
before it; with the round's acceptance and beam check.

    python tests/perf/pretrain_curve.py PRETRAIN_DIR [--png curve.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from farm.report.output import pyplot, save_figure
from farm.store.rundir import RunDir
from farm.workflows.pretrain import curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--png", type=Path, help="also plot the curve to this file")
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


if __name__ == "__main__":
    main()
