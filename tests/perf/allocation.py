"""Equal against gain allocation (issue 27), side by side on this host, same total budget.

Campaigns of the six built-ins (R rounds x B per pipeline), `--allocation equal` and
`--allocation gain`, repeated, the order alternating. Then every run's best so far, per
pipeline and round, is rebuilt from its run's records and re-timed interleaved with each
pipeline's baseline (beam-32 with the start weights), since a minimum of noisy timings
rewards noise. Printed per run and round: candidates spent, the objective as the rounds
timed it and as re-timed (the geometric mean over pipelines of best / baseline); the
candidates each run needs to get 95% of the way to equal allocation's final objective
(goal: gain with at most 60% of equal's); a plot of the objective against candidates.

    python tests/perf/allocation.py [--rounds 6] [--batch-size 16] [--repeats 2]
        [--retimes 10] [--out DIR]

Runs already in --out are resumed (finished ones reused). It compiles and times for hours:
run it alone on the machine.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, CandidateSpec
from farm.devices.timing import TimingConfig
from farm.execution import compare
from farm.execution.session import DeviceSession, default_target
from farm.machine.targets import resolve
from farm.model import weights
from farm.pipelines import catalog
from farm.store.rundir import RunDir
from farm.store.samples import FINALIST_COLUMNS
from farm.tuning.finalize import spec_from_row

MODES = ("equal", "gain")


def tune(out: Path, mode: str, rounds: int, batch: int) -> None:
    cmd = [sys.executable, "-m", "farm", "autotune", "all", "--rounds", str(rounds),
           "--batch-size", str(batch), "--allocation", mode, "--weights", "baseline",
           "--out", str(out)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def bests_by_round(run: RunDir, rounds: int) -> dict[int, dict[str, dict]]:
    """Per round, per pipeline: the fastest ok row of the rounds up to it."""
    rows = [r for r in run.samples.read(FINALIST_COLUMNS).to_pylist()
            if r["status"] == "ok" and r["runtime_ms"]]
    out: dict[int, dict[str, dict]] = {}
    for rnd in range(1, rounds + 1):
        best: dict[str, dict] = {}
        for r in rows:
            if r["round"] <= rnd and (r["benchmark"] not in best
                                      or r["runtime_ms"] < best[r["benchmark"]]["runtime_ms"]):
                best[r["benchmark"]] = r
        out[rnd] = best
    return out


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--retimes", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("allocation-runs"))
    args = ap.parse_args()
    names = [b.name for b in catalog.builtin_benchmarks()]
    runs: list[tuple[str, Path]] = []
    for rep in range(args.repeats):
        for mode in (MODES if rep % 2 == 0 else MODES[::-1]):
            out = args.out / f"{mode}-{rep + 1}"
            tune(out, mode, args.rounds, args.batch_size)
            runs.append((mode, out))
    per_round = {out: bests_by_round(RunDir(out), args.rounds) for _, out in runs}
    with DeviceSession(None, holder="tests/perf/allocation.py") as session:
        info = session.devices[0]
        target = resolve(default_target(info))
        pool = session.pool([info], target)
        variants, keys = {}, {}
        for name in names:
            bench = catalog.resolve(name)
            base = CandidateSpec(bench, target, weights.baseline(),
                                 parallelism=DEFAULT_PARALLELISM, **BEAM_SEARCH)
            variants[("baseline", name)] = compare.Variant(("baseline", name), base)
            for _, out in runs:
                for rnd, best in per_round[out].items():
                    row = best.get(bench.label)
                    if row is None:
                        continue
                    key = ("sample", row["sample_id"])
                    keys[(out, rnd, bench.label)] = key
                    if key not in variants:
                        spec = spec_from_row(row, base, RunDir(out))
                        variants[key] = compare.Variant(
                            key, spec, error="" if spec else "its weights are lost")
        print(f"re-timing {len(variants)} schedules {args.retimes}x interleaved", flush=True)
        built = compare.build(pool, list(variants.values()), 900.0)
        timed = compare.retime(pool, built, DEFAULT_PARALLELISM, TimingConfig(), args.retimes)
    report = []
    for mode, out in runs:
        spent, curve = 0, []
        for rnd in range(1, args.rounds + 1):
            record = RunDir(out).read_round(rnd)
            spent += record.candidates if record else 0
            ratios_round, ratios_retimed = [], []
            for name in names:
                label = catalog.resolve(name).label
                row = per_round[out][rnd].get(label)
                first = RunDir(out).read_round(1)
                base_ms = ((first.pipelines or {}).get(label, {}) if first else {}).get("beam_ms")
                if row and base_ms:
                    ratios_round.append(row["runtime_ms"] / base_ms)
                key = keys.get((out, rnd, label))
                b, t = timed[("baseline", name)].median_ms, \
                    timed[key].median_ms if key in timed else None
                if b and t:
                    ratios_retimed.append(t / b)
            curve.append((spent, geomean(ratios_round), geomean(ratios_retimed)))
        report.append((mode, out, curve))
        print(f"\n{mode} ({out.name}):  candidates  objective as timed  re-timed")
        for spent, a, b in curve:
            print(f"  {spent:10d}  {a or float('nan'):18.3f}  {b or float('nan'):8.3f}")
    equal_final = geomean([c[-1][2] for m, _, c in report if m == "equal" and c[-1][2]])
    if equal_final:
        target = 1 - 0.95 * (1 - equal_final)  # 95% of the way from 1 to equal's final
        print(f"\nequal allocation's final objective (re-timed, geometric mean of its runs): "
              f"{equal_final:.3f}; 95% of the way: {target:.3f}")
        for mode, out, curve in report:
            reached = next((s for s, _, b in curve if b and b <= target), None)
            print(f"  {mode} ({out.name}): reaches it after "
                  f"{reached if reached else 'more than ' + str(curve[-1][0])} candidates")
    _plot(report, args.out / "allocation.png")
    print(f"plot: {args.out / 'allocation.png'}")
    return 0


def _plot(report, path: Path) -> None:
    from farm.report.output import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, out, curve in report:
        xs = [s for s, _, b in curve if b]
        ax.plot(xs, [b for _, _, b in curve if b], marker="o" if mode == "gain" else "s",
                linestyle="-" if mode == "gain" else "--", label=f"{mode} ({out.name})")
    ax.set_xlabel("candidates spent")
    ax.set_ylabel("objective: geometric mean of best / baseline (re-timed)")
    ax.set_title("Campaign of the six built-ins: equal against gain allocation")
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
