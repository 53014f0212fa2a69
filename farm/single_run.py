"""`farm run`: autoschedule one benchmark, time it, and time its manual schedule beside it.

It runs in this process on this machine's devices, or, with a Ray address,
compiles on the cluster and times on the device named there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farm import build
from farm.candidate import BuildResult, CandidateSpec, Measurement
from farm.devices.base import Device, DeviceInfo
from farm.errors import WorkFailed
from farm.timing import TimingConfig


@dataclass(frozen=True)
class Timed:
    build: BuildResult
    measurement: Measurement | None


@dataclass(frozen=True)
class RunResult:
    device: DeviceInfo
    auto: Timed
    manual: Timed | None
    schedule_file: Path | None


class LocalRunner:
    """Compile in this process, time on a device of this machine."""

    def __init__(self, device: Device):
        self.device = device
        self.info = device.info

    def build(self, spec: CandidateSpec) -> tuple[BuildResult, bytes]:
        result, binary, _ = build.build(spec)
        return result, binary

    def time(self, binary, threads: int, timing: TimingConfig) -> Measurement:
        return self.device.run(binary, threads, timing)


class RayRunner:
    """Compile as a Ray task, time on a device actor pinned to the device's node."""

    def __init__(self, info: DeviceInfo):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.workers import DeviceActor

        self.info = info
        self.actor = DeviceActor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            info.node_id, soft=False)).remote(info, {})

    def build(self, spec: CandidateSpec):
        import ray

        from farm.workers import build_task

        meta, binary, _ = build_task.remote(spec)
        return ray.get(meta), binary

    def time(self, binary, threads: int, timing: TimingConfig) -> Measurement:
        import ray

        return ray.get(self.actor.run.remote(binary, threads, timing))


def run_benchmark(spec: CandidateSpec, runner, timing: TimingConfig, out_dir: Path | None,
                  with_manual: bool = True) -> RunResult:
    auto = _build_and_time(spec, runner, timing)
    schedule_file = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        schedule_file = out_dir / f"{spec.benchmark.name}.schedule.h"
        schedule_file.write_text(auto.build.schedule.source)
    manual = None
    if with_manual:
        manual = _build_and_time(build.manual_spec(spec), runner, timing, required=False)
    return RunResult(runner.info, auto, manual, schedule_file)


def _build_and_time(spec: CandidateSpec, runner, timing: TimingConfig,
                    required: bool = True) -> Timed:
    result, binary = runner.build(spec)
    what = "manual schedule" if spec.is_manual else "autoscheduled schedule"
    if not result.ok:
        if required:
            raise WorkFailed(f"{spec.benchmark.name}: the {what} failed to compile: "
                             f"{result.error}\n{result.log}")
        return Timed(result, None)
    measurement = runner.time(binary, spec.parallelism, timing)
    if not measurement.ok and required:
        raise WorkFailed(f"{spec.benchmark.name}: the {what} failed to run: "
                         f"{measurement.error}\n{measurement.log}")
    return Timed(result, measurement)
