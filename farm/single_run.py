"""`farm run`: autoschedule one benchmark, time it, and time its manual schedule beside it.

Both go through the path every command takes (farm.scheduler over a
farm.pool.DevicePool): compile tasks on Ray (an embedded local Ray without an
address), the device's actor to time, and the same retries, timeouts and
quarantine as `farm autotune`. The two candidates compile at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm import build
from farm.candidate import BuildResult, CandidateSpec, Measurement, Status
from farm.devices.base import DeviceInfo
from farm.errors import WorkFailed
from farm.plan import FixedPlan
from farm.pool import DevicePool
from farm.scheduler import Outcome, RoundScheduler
from farm.targets import TargetInfo
from farm.timing import TimingConfig


@dataclass(frozen=True)
class Timed:
    build: BuildResult
    measurement: Measurement | None


@dataclass(frozen=True)
class RunResult:
    device: DeviceInfo
    target: TargetInfo
    auto: Timed
    manual: Timed | None
    schedule_file: Path | None


def run_benchmark(spec: CandidateSpec, pool: DevicePool, timing: TimingConfig,
                  out_dir: Path | None, with_manual: bool = True,
                  compile_timeout_s: float = 600.0, on_update=None) -> RunResult:
    """`on_update(counts)`: progress (farm.scheduler.Counts), as RoundScheduler reports it."""
    specs = [spec, build.manual_spec(spec)] if with_manual else [spec]
    scheduler = RoundScheduler(pool, threads=spec.parallelism, timing=timing,
                               compile_timeout_s=compile_timeout_s, on_update=on_update)
    outcomes = scheduler.run(FixedPlan(specs))
    auto = _timed(outcomes[0], spec.benchmark.label, "autoscheduled schedule", required=True)
    schedule_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        schedule_file = out_dir / f"{spec.benchmark.name}.schedule.h"
        assert auto.build.schedule is not None  # an ok build carries its schedule
        schedule_file.write_text(auto.build.schedule.source)
    manual = _timed(outcomes[1], spec.benchmark.label, "manual schedule", required=False) \
        if with_manual else None
    device = pool.handles[0].info
    return RunResult(device, spec.target, auto, manual, schedule_file)


def _timed(o: Outcome, name: str, what: str, required: bool) -> Timed:
    if o.build is None or not o.build.ok:
        if required:
            log = f"\n{o.log}" if o.log else ""
            raise WorkFailed(f"{name}: the {what} failed to compile: {o.error}{log}")
        # Status(...): Outcome.status holds a Status but is annotated str (farm.scheduler)
        return Timed(o.build or BuildResult(Status(o.status), error=o.error), None)
    if not (o.measurement and o.measurement.ok) and required:
        log = f"\n{o.log}" if o.log else ""
        raise WorkFailed(f"{name}: the {what} failed to run: {o.error}{log}")
    return Timed(o.build, o.measurement)
