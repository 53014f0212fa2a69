"""A synthetic device and synthetic compile work, for measuring the farm itself.

The device does no real work and holds no CPU: it sleeps for a fixed time and
answers with a runtime derived from the binary's bytes (so the same artifact
always "measures" the same). The compile tasks sleep and return a featurization
unique to the candidate's seed. With them the scaling benchmark measures the
driver's own overhead and device utilization for any number of devices, and
the reliability tests make devices fail on purpose.
"""

from __future__ import annotations

import hashlib
import struct
import time

from farm.candidate import DEVICE_LOST, OK, BuildResult, CandidateSpec, Measurement, Schedule
from farm.devices.base import SYNTHETIC, Device, DeviceInfo
from farm.featurization import STAGE_FLOATS
from farm.timing import TimingConfig


def synthetic_infos(count: int, node: str = "synthetic", node_id: str = "",
                    seconds: float = 0.5, behavior: str = "ok") -> list[DeviceInfo]:
    """`count` synthetic devices; behavior "ok", or "fail" (every call is device_lost)."""
    return [DeviceInfo(id=f"syn{i}@{node}", kind=SYNTHETIC, node=node, node_id=node_id,
                       model=f"synthetic {seconds:g} s/measurement, {behavior}",
                       features=(f"seconds={seconds}", f"behavior={behavior}"))
            for i in range(count)]


def _feature(info: DeviceInfo, name: str, default: str) -> str:
    for f in info.features:
        key, _, value = f.partition("=")
        if key == name:
            return value
    return default


class SyntheticDevice(Device):
    def __init__(self, info: DeviceInfo, isolation: str = "none"):
        super().__init__(info)
        self.seconds = float(_feature(info, "seconds", "0.5"))
        self.behavior = _feature(info, "behavior", "ok")

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        time.sleep(self.seconds)
        if self.behavior == "fail":
            return self.measurement(DEVICE_LOST, run_s=self.seconds,
                                    error=f"{self.info.id}: synthetic failure")
        ms = fake_runtime_ms(binary)
        return self.measurement(OK, runtimes_ms=(ms, ms * 1.01, ms * 1.02),
                                run_s=self.seconds)


def fake_runtime_ms(binary: bytes) -> float:
    return 0.2 + int.from_bytes(hashlib.sha256(binary).digest()[:2], "little") / 65536


def fake_featurization(seed: int, stages: int = 4) -> bytes:
    values = [0.0] * (STAGE_FLOATS * stages)
    for s in range(stages):
        values[s * STAGE_FLOATS] = float(seed % 1_000_003)  # a schedule feature
        values[s * STAGE_FLOATS + 40] = float(s)  # a pipeline feature
    return struct.pack(f"<{len(values)}f", *values)


def synthetic_build(spec: CandidateSpec, seconds: float) -> tuple[BuildResult, bytes, None]:
    time.sleep(seconds)
    schedule = Schedule(f"// synthetic schedule, seed {spec.seed}\n",
                        fake_featurization(spec.seed), 0.0)
    return BuildResult(OK, schedule=schedule, codegen_s=seconds, link_s=0.0,
                       host="synthetic"), spec.seed.to_bytes(8, "little"), None


def synthetic_autoschedule(spec: CandidateSpec) -> BuildResult:
    return BuildResult(OK, schedule=Schedule("", fake_featurization(spec.seed), 0.0),
                       host="synthetic")
