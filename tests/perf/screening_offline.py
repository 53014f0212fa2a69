"""What screening by the model would have picked, from a run that did not screen.

    python tests/perf/screening_offline.py RUN_DIR [--factors 1 2 4 8] [--draws 2000]

Every row of a run holds the prediction of the weights that planned its round ("predicted")
beside its measured runtime. For each round, this draws groups of F of the round's random
probes of the accepted weights (b1-d1@accepted, the candidates --screen draws again), keeps
the one the model predicts fastest (a probe redrawn with noise, b1-d1@accepted~noise, counts
as one of them), and compares what was kept with a probe drawn at random
(F = 1): the median ratio of measured runtimes (kept / random) and how often the kept one is
among the round's fastest quarter. It also prints the rank correlation of prediction and
runtime per round. No machine time: it reads the run. What it cannot say is how screening
changes later rounds (their training data are the screened picks).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from scipy import stats

from farm.store.rundir import RunDir

PROBE = "b1-d1@accepted"


def rounds_of(run: RunDir) -> dict[int, list[tuple[float, float]]]:
    """(predicted, measured ms) of each round's ok accepted-weights probes."""
    rows = run.samples.read(["round", "status", "planner", "predicted", "runtime_ms"])
    out: dict[int, list[tuple[float, float]]] = {}
    for r in rows.to_pylist():
        if r["status"] == "ok" and (r["planner"] or "").startswith(PROBE) and \
                r["predicted"] is not None:  # redraws with noise too (`~noise`)
            out.setdefault(r["round"], []).append((r["predicted"], r["runtime_ms"]))
    return out


def simulate(probes: list[tuple[float, float]], factor: int, draws: int,
             rng: np.random.Generator) -> tuple[list[float], list[bool]]:
    """Measured ms of the model's pick among `factor` random probes, `draws` times, and
    whether each pick is in the round's fastest quarter."""
    ms = np.array([m for _, m in probes])
    quarter = np.quantile(ms, 0.25)
    picked, fast = [], []
    for _ in range(draws):
        group = rng.choice(len(probes), size=factor, replace=False)
        best = min(group, key=lambda i: probes[i][0])
        picked.append(float(ms[best]))
        fast.append(bool(ms[best] <= quarter))
    return picked, fast


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--factors", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--draws", type=int, default=2000)
    a = p.parse_args()
    rounds = rounds_of(RunDir(a.run_dir))
    rng = np.random.default_rng(0)
    usable = {r: v for r, v in rounds.items() if len(v) >= max(a.factors)}
    if not usable:
        raise SystemExit(f"{a.run_dir}: no round has {max(a.factors)} predicted probes")
    rhos = [stats.spearmanr([x for x, _ in v], [y for _, y in v]).statistic
            for v in usable.values()]
    print(f"{len(usable)} rounds, {sum(len(v) for v in usable.values())} probes of the "
          f"accepted weights; Spearman rho of prediction and runtime per round: median "
          f"{statistics.median(rhos):.2f} (range {min(rhos):.2f} to {max(rhos):.2f})")
    print(f"{'F':>3}  {'kept / random (median of rounds)':>34}  {'kept in fastest 25%':>20}")
    for factor in a.factors:
        ratios, fast = [], []
        for v in usable.values():
            picked, quick = simulate(v, factor, a.draws, rng)
            plain, _ = simulate(v, 1, a.draws, rng)
            ratios.append(statistics.median(picked) / statistics.median(plain))
            fast.append(sum(quick) / len(quick))
        print(f"{factor:>3}  {statistics.median(ratios):>34.3f}  "
              f"{statistics.median(fast):>20.0%}")


if __name__ == "__main__":
    main()
