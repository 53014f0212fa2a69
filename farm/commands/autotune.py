"""farm autotune: the autotuning loop."""

from __future__ import annotations

from farm import build, catalog, targets, weights
from farm.candidate import CandidateSpec
from farm.timing import TimingConfig
from farm.tuner import TuneSettings, autotune


def main(args) -> int:
    settings = TuneSettings(
        benchmark=catalog.resolve(args.benchmark), target=targets.resolve(args.target or "host"),
        start_weights=weights.resolve(args.weights), rounds=args.rounds,
        batch_size=args.batch_size, budget_s=args.budget, parallelism=args.parallelism,
        device_ids=tuple(args.devices or ()), compile_timeout_s=args.compile_timeout,
        timing=TimingConfig(timeout_s=args.run_timeout), isolation=args.isolation,
        train_steps=args.train_steps)
    build.check_pipeline(CandidateSpec(settings.benchmark, settings.target,
                                         settings.start_weights))
    s = autotune(args.out, settings, address=args.address)
    print(f"\n{s.run_dir}: {s.rounds} rounds, {s.rows} samples ({s.ok} ok), {s.distinct} "
          f"distinct schedules measured, {s.elapsed_s:.0f} s")
    if s.stopped:
        print(f"stopped early: {s.stopped}; rerun the same command to go on")
    if s.best_ms is not None:
        print(f"best schedule: {s.best_ms:.3f} ms (median of re-timings), {s.best_schedule}")
    print(f"final weights: {s.latest_weights}")
    print(f"best weights:  {s.best_weights}" + (f"\n               ({s.best_weights_reason})"
                                                if s.best_weights_reason else ""))
    print(f"use them:      {s.command}")
    return 0
