"""Does the farm's learning pay? Autotune each benchmark, then judge the weights it hands over.

    python tests/perf/quality.py [--benchmarks ...] [--batch 32] [--rounds 4] [--retimes 10]
                                 [--work DIR]

Per benchmark: `farm autotune B --rounds R --batch-size N` (a fresh run, or the one left in
--work), then a FRESH interleaved re-timing (not the one that chose the weights) of beam-32
with the baseline weights, beam-32 with the handed-over weights (RUN_DIR/weights/best.weights),
the run's best schedule, and beam-32 with every distinct weights that planned a round. Ratios
are medians of paired re-timings with 95% bootstrap intervals (farm.stats.verdict); < 1 is faster.
The default list is the six built-ins and tests/perf/pipelines/unsharp.py, which nothing in
the farm was tuned on.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from farm.candidate import OK
from farm.devices.timing import TimingConfig
from farm.execution.session import DeviceSession
from farm.machine.targets import resolve
from farm.model import retrain, weights
from farm.pipelines import catalog
from farm.stats import verdict
from farm.store.samples import SampleStore
from farm.workflows.bench import BASELINE, TunedRun, variants

EXTRA = str(Path(__file__).parent / "pipelines" / "unsharp.py") + ":unsharp"


def autotune(bench: str, out: Path, batch: int, rounds: int) -> None:
    if (out / "best" / "runtime.json").exists():
        return  # a finished run from an earlier call: judge it again
    subprocess.run([sys.executable, "-m", "farm", "autotune", bench, "--rounds", str(rounds),
                    "--batch-size", str(batch), "--weights", "baseline", "--out", str(out)],
                   check=True,
                   stdout=subprocess.DEVNULL)


def run_facts(out: Path) -> dict:
    rows = SampleStore(out / "samples").read(["round", "status", "planner"]).to_pylist()
    rounds = sorted({r["round"] for r in rows})
    dups = [sum(r["status"] == "duplicate" for r in rows if r["round"] == k) for k in rounds]
    accepted = []  # per round: provisional winner, and the outcome of a beam check
    for k in rounds:
        rec = json.loads((out / "rounds" / f"round-{k:06d}.json").read_text())
        check = rec.get("beam_check")
        mark = "" if not check else ("check passed, " if check["passed"] else "check failed, ")
        name = rec["acceptance"]["accepted"]
        accepted.append(mark + ("-" if name == "current" else f"{name} provisional"))
    best = json.loads((out / "weights" / "best.json").read_text())
    return {"dups": dups, "accepted": accepted, "handed": best["weights"],
            "ok": sum(r["status"] == OK for r in rows)}


def judge(bench_ref: str, out: Path, retimes: int) -> dict:
    run = TunedRun.load(out)
    bench = catalog.resolve(bench_ref)
    target = resolve(run.target)
    built = {}
    specs = dict(variants(bench, target, run.parallelism, run.best_weights, run))
    specs.pop("manual", None)
    base = specs[BASELINE]
    seen = {base.weights.sha256, specs["beam32 tuned"].weights.sha256}
    for path in sorted((out / "weights").glob("round-*.weights"))[:-1]:  # planned a round
        w = weights.load(path)
        if w.sha256 not in seen:
            seen.add(w.sha256)
            specs[f"planned by {path.stem}"] = replace(base, weights=w)
    with DeviceSession() as session:  # the path `farm bench` takes, on this host's CPU
        info, _ = session.pick(None, run.target)
        pool = session.pool([info], target)
        for label, (b, binary, _) in zip(specs, pool.build(list(specs.values()), 900),
                                         strict=True):
            if b is not None and b.result.ok:
                built[label] = binary
        times = pool.retime(built, run.parallelism, TimingConfig(), retimes)
    base_t = times[BASELINE]
    out_v = {label: verdict.compare(times[label], base_t) for label in times
             if label != BASELINE}
    out_v["tuned vs run best"] = verdict.compare(times["beam32 tuned"], times["run best"])
    out_v["same weights"] = specs["beam32 tuned"].weights.sha256 == base.weights.sha256
    return out_v


def handed(v: dict) -> str:
    """The handed-over weights' verdict; when they are the baseline weights, the two beam
    searches are one schedule built twice, and the verdict is the noise's (an A/A test)."""
    text = v["beam32 tuned"].describe()
    return f"= baseline (A/A {text})" if v["same weights"] else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+",
                        default=[b.name for b in catalog.builtin_benchmarks()] + [EXTRA])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--retimes", type=int, default=10)
    parser.add_argument("--work", type=Path, default=Path("quality-runs"))
    args = parser.parse_args()
    results = []
    for ref in args.benchmarks:
        name = ref.rsplit(":", 1)[-1]
        out = args.work / f"{name}-b{args.batch}"
        autotune(ref, out, args.batch, args.rounds)
        facts = run_facts(out)
        v = judge(ref, out, args.retimes)
        results.append((name, facts, v))
        planned = [x for k, x in v.items() if k.startswith("planned by")]
        worst = max(planned, key=lambda x: x.ratio or 0, default=None)
        print(f"{name}: run best {v['run best'].describe()}; handed ({facts['handed']}) "
              f"{handed(v)}; handed / run best "
              f"{v['tuned vs run best'].describe()}; worst planning weights "
              f"{worst.describe() if worst else 'baseline only'}; duplicates per round "
              f"{facts['dups']}; weights per round {facts['accepted']}", flush=True)
    print(f"\nbatch {args.batch}, {args.rounds} rounds, {args.retimes} interleaved re-timings; "
          "ratios to beam-32 with the baseline weights, 95% intervals")
    print(f"{'benchmark':<12} {'run best':<28} {'beam-32 handed':<28} {'handed / best':<28} "
          f"{'worst planner':<28} dups/round")
    logs = []
    for name, facts, v in results:
        planned = [x for k, x in v.items() if k.startswith("planned by")]
        worst = max(planned, key=lambda x: x.ratio or 0, default=None)
        if v["run best"].ratio:
            logs.append(math.log(v["run best"].ratio))
        print(f"{name:<12} {v['run best'].describe():<28} {handed(v):<28} "
              f"{v['tuned vs run best'].describe():<28} "
              f"{worst.describe() if worst else '(baseline only)':<28} {facts['dups']}")
    six = [math.log(v["run best"].ratio) for n, _, v in results
           if v["run best"].ratio and n in {b.name for b in catalog.builtin_benchmarks()}]
    if six:
        print(f"geometric mean of run best / baseline over the built-ins: "
              f"{math.exp(sum(six) / len(six)):.2f}")
    print(f"trainer steps per candidate: {retrain.DEFAULT_STEPS}")


if __name__ == "__main__":
    main()
