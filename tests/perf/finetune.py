"""Does fine-tuning from a pre-trained model pay? Per pipeline, `farm autotune` from the
pre-trained weights for a few rounds and from the baseline weights for more (one after the
other, the order alternating), then both runs' best schedules rebuilt from their runs'
records and re-timed interleaved on this host, with a verdict (fine-tuned / from baseline).

    python tests/perf/finetune.py PRETRAINED.weights [BENCH ...] [--fine-rounds 2]
        [--base-rounds 4] [--batch-size 16] [--retimes 10] [--out DIR]

Goal (issue 25): the fine-tuned best is not significantly slower on at least 4 of the six
built-ins. Runs already in --out are resumed (finished ones are reused), so a stopped
measurement goes on where it stopped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, CandidateSpec
from farm.devices.timing import TimingConfig
from farm.execution import compare
from farm.execution.session import DeviceSession, default_target
from farm.machine.targets import resolve
from farm.model import weights
from farm.pipelines import catalog
from farm.stats import verdict
from farm.workflows.bench import TunedRun


def tune(bench: str, out: Path, rounds: int, batch: int, start: str) -> None:
    """`start`: a weights file, or "baseline" (Halide's, whatever model the registry holds)."""
    cmd = [sys.executable, "-m", "farm", "autotune", bench, "--rounds", str(rounds),
           "--batch-size", str(batch), "--out", str(out), "--weights", start]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def best_spec(run_dir: Path, bench, target) -> CandidateSpec:
    run = TunedRun.load(run_dir)
    assert run.best is not None, f"{run_dir} has no best schedule"
    b = run.best
    base = CandidateSpec(bench, target, weights.baseline(), **BEAM_SEARCH)
    return replace(base, weights=weights.load(b["weights_path"]), beam_size=b["beam_size"],
                   random_dropout=b["random_dropout"], seed=b["seed"],
                   parallelism=b["parallelism"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pretrained")
    parser.add_argument("benchmarks", nargs="*")
    parser.add_argument("--fine-rounds", type=int, default=2)
    parser.add_argument("--base-rounds", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--retimes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("finetune-runs"))
    args = parser.parse_args()
    weights.load(args.pretrained)  # a bad file stops us before any work
    names = args.benchmarks or [b.name for b in catalog.builtin_benchmarks()]
    for i, name in enumerate(names):
        fine = (name, args.out / f"fine-{name}", args.fine_rounds, str(args.pretrained))
        base = (name, args.out / f"base-{name}", args.base_rounds, "baseline")
        for bench, out, rounds, start in ((fine, base) if i % 2 == 0 else (base, fine)):
            tune(bench, out, rounds, args.batch_size, start)
    rows = []
    with DeviceSession(None) as session:
        info = session.devices[0]
        target = resolve(default_target(info))
        pool = session.pool([info], target)
        for name in names:
            bench = catalog.resolve(name)
            built = compare.build(pool, [
                compare.Variant("fine", best_spec(args.out / f"fine-{name}", bench, target),
                                against="base"),
                compare.Variant("base", best_spec(args.out / f"base-{name}", bench, target))],
                900.0)
            timed = compare.retime(pool, built, DEFAULT_PARALLELISM, TimingConfig(),
                                   args.retimes)
            v = timed["fine"].verdict or verdict.compare([], [])
            rows.append((name, timed["base"].median_ms, timed["fine"].median_ms, v))
            print(f"{name}: {v.describe()}", flush=True)
    print(f"\nfine-tuned ({args.fine_rounds} rounds of {args.batch_size} from "
          f"{args.pretrained}) against {args.base_rounds} rounds from the baseline weights; "
          f"both bests re-timed {args.retimes}x interleaved")
    print(f"{'benchmark':12s} {'base best ms':>12s} {'fine best ms':>12s}  fine / base")
    for name, base_ms, fine_ms, v in rows:
        print(f"{name:12s} {base_ms or 0:12.3f} {fine_ms or 0:12.3f}  {v.describe()}")
    held = sum(v.word != verdict.SLOWER and v.ratio is not None for *_, v in rows)
    print(f"not significantly slower on {held} of {len(rows)} (goal: at least 4 of 6)")


if __name__ == "__main__":
    main()
