"""`farm run`: autoschedule one benchmark, time it, and time its manual schedule beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm import compile
from farm.candidate import BuildResult, CandidateSpec, Measurement
from farm.devices.base import Device
from farm.errors import WorkFailed
from farm.timing import TimingConfig


@dataclass(frozen=True)
class Timed:
    build: BuildResult
    measurement: Measurement | None


@dataclass(frozen=True)
class RunResult:
    auto: Timed
    manual: Timed | None
    schedule_file: Path | None


def run_benchmark(spec: CandidateSpec, device: Device, timing: TimingConfig,
                  out_dir: Path | None, with_manual: bool = True) -> RunResult:
    auto = _build_and_time(spec, device, timing)
    schedule_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        schedule_file = out_dir / f"{spec.benchmark.name}.schedule.h"
        schedule_file.write_text(auto.build.schedule.source)
    manual = None
    if with_manual:
        manual = _build_and_time(compile.manual_spec(spec), device, timing, required=False)
    return RunResult(auto, manual, schedule_file)


def _build_and_time(spec: CandidateSpec, device: Device, timing: TimingConfig,
                    required: bool = True) -> Timed:
    result, binary = compile.build(spec)
    what = "manual schedule" if spec.is_manual else "autoscheduled schedule"
    if not result.ok:
        if required:
            raise WorkFailed(f"{spec.benchmark.name}: the {what} failed to compile: "
                             f"{result.error}\n{result.log}")
        return Timed(result, None)
    measurement = device.run(binary, spec.parallelism, timing)
    if not measurement.ok and required:
        raise WorkFailed(f"{spec.benchmark.name}: the {what} failed to run: "
                         f"{measurement.error}\n{measurement.log}")
    return Timed(result, measurement)
