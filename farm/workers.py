"""What runs on Ray workers: compile tasks, device actors, per-node discovery.

Everything here returns values; a failed candidate is a status, not an
exception, so one bad schedule never takes the driver down. Ray's own
retries cover a worker process that dies (max_retries / max_restarts).
"""

from __future__ import annotations

import ray

from farm.candidate import BuildResult, CandidateSpec, Library, Measurement
from farm.devices.base import Device, DeviceInfo
from farm.timing import TimingConfig


def _compile_guarded(fn, spec):
    from farm import gate

    with gate.compiling():
        return fn(spec)


@ray.remote(num_cpus=1, max_retries=1)
def autoschedule_task(spec: CandidateSpec) -> BuildResult:
    """Only the autoscheduler's choice (for finding duplicates before codegen)."""
    from farm import build

    return _compile_guarded(build.autoschedule_result, spec)


@ray.remote(num_cpus=1, num_returns=3, max_retries=1)
def build_task(spec: CandidateSpec) -> tuple[BuildResult, bytes, Library | None]:
    from farm import build

    return _compile_guarded(build.build, spec)


@ray.remote(num_cpus=0, max_retries=1)
def synthetic_autoschedule_task(spec: CandidateSpec) -> BuildResult:
    from farm.devices.synthetic import synthetic_autoschedule

    return synthetic_autoschedule(spec)


@ray.remote(num_cpus=0, num_returns=3, max_retries=1)
def synthetic_build_task(spec: CandidateSpec, seconds: float):
    from farm.devices.synthetic import synthetic_build

    return synthetic_build(spec, seconds)


@ray.remote(num_cpus=0, max_restarts=3, max_task_retries=0)
class DeviceActor:
    """One per device, pinned to the device's node; times one binary at a time."""

    def __init__(self, info: DeviceInfo, options: dict):
        from farm.devices.registry import open_device

        self.device: Device = open_device(info, **options)

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        return self.device.run(binary, threads, timing)

    def info(self) -> DeviceInfo:
        return self.device.info

    def pid(self) -> int:
        import os

        return os.getpid()


@ray.remote(num_cpus=0, max_retries=1)
def discover_task(node_id: str, node_name: str) -> tuple[list[DeviceInfo], list[str]]:
    """The devices attached to the node this task is pinned to, and notes."""
    from farm.devices.registry import discover_local

    return discover_local(node_name, node_id)
