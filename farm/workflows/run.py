"""`farm run`: autoschedule one benchmark, time it, and time its manual schedule beside it.

Both go through the path every command takes (farm.execution.scheduler over a
farm.execution.pool.DevicePool): compile tasks on Ray (an embedded local Ray without an
address), the device's actor to time, and the same retries, timeouts and
quarantine as `farm autotune`. The two candidates compile at once. Then the two
are re-timed, interleaved, on the device (farm.execution.compare, the farm's one
comparison workflow) for the verdict with its interval (farm.stats.verdict): two single
timings never decide which is faster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from farm import atomic
from farm.build import compiler
from farm.candidate import BuildResult, CandidateSpec, Measurement, Status
from farm.deprecation import renamed
from farm.devices.base import DeviceInfo
from farm.devices.timing import TimingConfig
from farm.errors import WorkFailed
from farm.execution import compare
from farm.execution.pool import DevicePool
from farm.execution.scheduler import Outcome, RoundScheduler
from farm.machine.targets import TargetInfo
from farm.paths import path_name
from farm.search.plans import FixedPlan
from farm.stats import verdict
from farm.stats.verdict import Verdict

DEFAULT_RETIMES = 5  # interleaved re-timings of each schedule: the fewest with a verdict
AUTO, MANUAL = "autoscheduled", "manual"  # the two schedules' labels in the re-timing


@dataclass(frozen=True)
class Timed:
    build: BuildResult
    measurement: Measurement | None


@dataclass(frozen=True)
class RunResult:
    device: DeviceInfo
    target: TargetInfo
    auto: Timed  # compiled and timed once (its measurement: the harness's repeats)
    manual: Timed | None
    schedule_path: Path | None  # OUT/NAME.schedule.h, when written
    # the autoscheduled schedule against the manual one from their interleaved re-timings
    # (ratio: auto's time / manual's); None without a manual schedule timed
    verdict: Verdict | None = None
    retimes_ms: dict[str, list[float | None]] = field(default_factory=dict)  # AUTO, MANUAL

    schedule_file = renamed("schedule_file", "schedule_path")

    def median_ms(self, label: str) -> float | None:
        """The median of `label`'s (AUTO or MANUAL) re-timings."""
        return verdict.median(self.retimes_ms.get(label, []))


def run_benchmark(spec: CandidateSpec, pool: DevicePool, timing: TimingConfig,
                  out_dir: Path | None, with_manual: bool = True,
                  compile_timeout_s: float = 600.0, on_update=None,
                  retimes: int = DEFAULT_RETIMES) -> RunResult:
    """`on_update(counts)`: progress (execution.scheduler.Counts), as RoundScheduler reports it.
    When both schedules ran, they are re-timed `retimes` times each, interleaved, for the
    verdict."""
    specs = [spec, compiler.manual_spec(spec)] if with_manual else [spec]
    scheduler = RoundScheduler(pool, threads=spec.parallelism, timing=timing,
                               compile_timeout_s=compile_timeout_s, on_update=on_update)
    outcomes = scheduler.run(FixedPlan(specs))
    auto = _timed(outcomes[0], spec.benchmark.label, "autoscheduled schedule", required=True)
    schedule_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        schedule_file = out_dir / f"{path_name(spec.benchmark.name)}.schedule.h"
        assert auto.build.schedule is not None  # an ok build carries its schedule
        # whole, and a link planted at its name replaced, not written through
        atomic.replace_bytes(schedule_file, auto.build.schedule.source.encode())
    manual = _timed(outcomes[1], spec.benchmark.label, "manual schedule", required=False) \
        if with_manual else None
    device = pool.handles[0].info
    times: dict = {}
    found = None
    if manual is not None and manual.measurement is not None and manual.measurement.ok \
            and outcomes[0].artifact and outcomes[1].artifact:
        # the artifacts the scheduler kept (a FixedPlan keeps every one that ran): the
        # comparison workflow builds nothing and re-times the two interleaved
        built = compare.build(pool, [
            compare.Variant(AUTO, artifact=outcomes[0].artifact, against=MANUAL),
            compare.Variant(MANUAL, artifact=outcomes[1].artifact)], compile_timeout_s)
        timed = compare.retime(pool, built, spec.parallelism, timing, retimes)
        if any(c.retimes_ms for c in timed.values()):  # none when the device was lost
            times = {key: list(c.retimes_ms) for key, c in timed.items()}
            found = timed[AUTO].verdict
    return RunResult(device, spec.target, auto, manual, schedule_file, found, times)


def _timed(o: Outcome, name: str, what: str, required: bool) -> Timed:
    if o.build is None or not o.build.ok:
        if required:
            log = f"\n{o.log}" if o.log else ""
            raise WorkFailed(f"{name}: the {what} failed to compile: {o.error}{log}")
        # Status(...): Outcome.status holds a Status but is annotated str (farm.execution.scheduler)
        return Timed(o.build or BuildResult(Status(o.status), error=o.error), None)
    if not (o.measurement and o.measurement.ok) and required:
        log = f"\n{o.log}" if o.log else ""
        raise WorkFailed(f"{name}: the {what} failed to run: {o.error}{log}")
    return Timed(o.build, o.measurement)
