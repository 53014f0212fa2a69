"""Doubles of the farm's collaborators, to pass in where the real ones would go.

- `SyntheticBuilder` and `SyntheticDevice` do no real work: a build sleeps and
  gives a featurization unique to the candidate's seed; a device sleeps and
  answers with a runtime derived from the binary's bytes (the same artifact
  always "measures" the same). The scaling benchmark measures the driver's own
  cost with them, and tests make devices fail on purpose.
- `ReplayBuilder` and `ReplayDevice` serve a recorded run: each candidate gets a
  recorded sample's featurization and schedule, and its timing is that sample's
  recorded runtimes, so the trainer sees real data.
- `FakeCluster` stands for farm.execution.cluster.Cluster over a Ray the test started.
- `ScriptedTrainer` decides acceptance and final models as told.

They go through the same Ray path as the real ones (farm.execution.workers): a builder
runs in compile tasks, a device in its actor.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import time
from dataclasses import dataclass, field

from farm.build.builder import Builder
from farm.candidate import (
    COMPILE_ERROR,
    DEVICE_LOST,
    OK,
    BuildResult,
    CandidateSpec,
    Measurement,
    Schedule,
)
from farm.devices.base import HOST, Device, DeviceInfo
from farm.devices.timing import TimingConfig
from farm.errors import MissingPrerequisite
from farm.model.acceptance import Decision
from farm.model.featurization import STAGE_FLOATS
from farm.model.retrain import TrainResult
from farm.model.trainer import Trainer
from farm.model.weights import Weights, perturbed

SYNTHETIC = "synthetic"  # the feature that marks a synthetic device


def synthetic_infos(count: int, node: str = "synthetic", node_id: str = "",
                    seconds: float = 0.5, behavior: str = "ok", kind: str = HOST
                    ) -> list[DeviceInfo]:
    """`count` synthetic devices; behavior "ok", "fail" (every call is device_lost),
    "hang" (a call never returns, as a wedged adb), "fault" (a timing meets a lasting fault,
    as when adb is removed) or "unopenable" (opening it does, as a refused gate folder).
    They are of `kind` (host by default), so host targets accept them."""
    return [DeviceInfo(id=f"syn{i}@{node}", kind=kind, node=node, node_id=node_id,
                       model=f"synthetic {seconds:g} s/measurement, {behavior}",
                       features=(SYNTHETIC, f"seconds={seconds}", f"behavior={behavior}"))
            for i in range(count)]


def _feature(info: DeviceInfo, name: str, default: str) -> str:
    for f in info.features:
        key, _, value = f.partition("=")
        if key == name:
            return value
    return default


class SyntheticDevice(Device):
    def __init__(self, info: DeviceInfo):
        super().__init__(info)
        self.seconds = float(_feature(info, "seconds", "0.5"))
        self.behavior = _feature(info, "behavior", "ok")

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        time.sleep(3600 if self.behavior == "hang" else self.seconds)
        if self.behavior == "fault":
            raise MissingPrerequisite(f"{self.info.id}: its synthetic prerequisite is gone: "
                                      "put it back", cause="synthetic-device")
        if self.behavior == "fail":
            return self.measurement(DEVICE_LOST, run_s=self.seconds,
                                    error=f"{self.info.id}: synthetic failure")
        ms = fake_runtime_ms(binary)
        return self.measurement(OK, runtimes_ms=(ms, ms * 1.01, ms * 1.02),
                                run_s=self.seconds)


def open_synthetic(info: DeviceInfo) -> Device:
    """The pool's opener for synthetic devices (DevicePool.create(..., opener=...))."""
    if SYNTHETIC not in info.features:
        raise ValueError(f"{info.id} is not a synthetic device")
    if _feature(info, "behavior", "ok") == "unopenable":
        raise MissingPrerequisite(f"{info.id} cannot be opened: its synthetic prerequisite "
                                  "is missing", cause="synthetic-device")
    return SyntheticDevice(info)


def fake_runtime_ms(binary: bytes) -> float:
    return 0.2 + int.from_bytes(hashlib.sha256(binary).digest()[:2], "little") / 65536


def fake_featurization(seed: int, stages: int = 4, pipeline: str = "") -> bytes:
    """Schedule features from `seed`, pipeline features from `pipeline` (its name)."""
    values = [0.0] * (STAGE_FLOATS * stages)
    kind = int(hashlib.sha256(pipeline.encode()).hexdigest()[:5], 16) if pipeline else 0
    for s in range(stages):
        values[s * STAGE_FLOATS] = float(seed % 1_000_003)  # a schedule feature
        values[s * STAGE_FLOATS + 40] = float(s)  # pipeline features
        values[s * STAGE_FLOATS + 41] = float(kind)
    return struct.pack(f"<{len(values)}f", *values)


class SyntheticBuilder(Builder):
    """Builds that sleep `seconds`: the driver's cost, measured. Each holds `cpus` of Ray's
    CPU accounting (none by default; a fraction makes Ray run as many at once as a real
    cluster of that many compile slots would). Beam search (dropout 100) gives the schedule
    its weights decide, as the real autoscheduler does; with `distinct`, probes draw from
    that many schedules only (a small schedule space)."""

    def __init__(self, seconds: float = 0.0, distinct: int | None = None, cpus: float = 0.0,
                 fault_flag: str | None = None, link_flag: str | None = None):
        self.seconds = seconds
        self.distinct = distinct
        self.cpus = cpus
        # while a file is at this path, builds meet a lasting fault (a compiler removed)
        self.fault_flag = fault_flag
        # while a file is at this path, every build fails to link: a row's compile_error
        # each time, which no device or node reports as a fault (a broken linker)
        self.link_flag = link_flag

    def _seed(self, spec: CandidateSpec) -> int:
        if spec.random_dropout >= 100:  # beam search: a schedule decided by the weights
            sha = spec.weights.sha256 if spec.weights else "0"
            return int(sha[:6], 16) + 1_000_000
        return spec.seed % self.distinct + 1 if self.distinct else spec.seed

    def autoschedule(self, spec: CandidateSpec, cpu_limit_s: float | None = None
                     ) -> BuildResult:
        feats = fake_featurization(self._seed(spec), pipeline=spec.benchmark.label)
        return BuildResult(OK, schedule=Schedule("", feats, 0.0), host=SYNTHETIC)

    def build(self, spec: CandidateSpec, cpu_limit_s: float | None = None):
        time.sleep(self.seconds)
        if self.fault_flag and os.path.exists(self.fault_flag):
            raise MissingPrerequisite(f"the synthetic compiler is gone ({self.fault_flag} "
                                      "exists): remove that file", cause="synthetic-compiler")
        seed = self._seed(spec)
        schedule = Schedule(f"// synthetic schedule, seed {seed}\n",
                            fake_featurization(seed, pipeline=spec.benchmark.label), 0.0)
        if self.link_flag and os.path.exists(self.link_flag):
            return (BuildResult(COMPILE_ERROR, error="compile (link) on synthetic: ld: cannot "
                                "find -lsynthetic", schedule=schedule, host=SYNTHETIC), b"",
                    None)
        return (BuildResult(OK, schedule=schedule, codegen_s=self.seconds, link_s=0.0,
                            host=SYNTHETIC, memory_mb=float(64 + seed % 64)),
                seed.to_bytes(8, "little"), None)


class ReplayBuilder(Builder):
    """Each candidate becomes one of a recorded run's ok samples (chosen by its seed and
    search settings): that sample's featurization and schedule source."""

    cpus = 0.0

    def __init__(self, rows: list[dict]):
        self.rows = [r for r in rows if r["status"] == OK and r["featurization"]]
        if not self.rows:
            raise ValueError("nothing to replay: no ok sample with a featurization")

    def _row(self, spec: CandidateSpec) -> dict:
        seed = spec.seed if spec.random_dropout < 100 else 0
        weights = spec.weights.sha256 if spec.weights is not None else "manual"
        text = f"{seed}/{spec.beam_size}/{spec.random_dropout}/{weights}"
        digest = hashlib.sha256(text.encode()).digest()
        return self.rows[int.from_bytes(digest[:4], "little") % len(self.rows)]

    def _schedule(self, row: dict) -> Schedule:
        return Schedule(row["schedule_source"] or "", row["featurization"], 0.0)

    def autoschedule(self, spec: CandidateSpec, cpu_limit_s: float | None = None
                     ) -> BuildResult:
        return BuildResult(OK, schedule=self._schedule(self._row(spec)), host="replay")

    def build(self, spec: CandidateSpec, cpu_limit_s: float | None = None):
        row = self._row(spec)
        return (BuildResult(OK, schedule=self._schedule(row), codegen_s=0.0, link_s=0.0,
                            host="replay"), row["sample_id"].encode(), None)


class ReplayDevice(Device):
    """Answers a ReplayBuilder's binary with its sample's recorded runtimes."""

    def __init__(self, info: DeviceInfo, runtimes: dict[str, tuple[float, ...]]):
        super().__init__(info)
        self.runtimes = runtimes

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        return self.measurement(OK, runtimes_ms=self.runtimes[binary.decode()], run_s=0.0)


def replay(rows: list[dict]) -> tuple[ReplayBuilder, object]:
    """A builder and a device opener that replay `rows` (a recorded run's samples)."""
    builder = ReplayBuilder(rows)
    runtimes = {r["sample_id"]: tuple(r["runtimes_ms"]) for r in builder.rows}
    return builder, functools.partial(ReplayDevice, runtimes=runtimes)


@dataclass
class FakeCluster:
    """farm.execution.cluster.Cluster's interface over a Ray the caller started (and stops)."""

    devices: list[DeviceInfo]
    slots: int = 2
    notes: list[str] = field(default_factory=list)
    local: bool = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def connect(self) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def discover(self, timeout_s: float = 60.0) -> tuple[list[DeviceInfo], list[str]]:
        return list(self.devices), list(self.notes)

    def compile_slots(self, node_ids: set[str] | None = None) -> int:
        return self.slots


class ScriptedTrainer(Trainer):
    """Decides as told: after the rounds in `provisional_after`, a candidate ("scripted":
    the current weights with a little noise) wins; otherwise the current weights stay.
    Final models are the initial weights with a little noise. It records what it was
    asked (`decided`: the held-out units; `steps_asked`: each decision's candidates'
    gradient steps; `trained`: the steps of each final model;
    `tables`: the sample ids of every table it was given)."""

    def __init__(self, provisional_after=()):
        self.provisional_after = set(provisional_after)
        self.decided: list = []
        self.steps_asked: list[list[int]] = []  # each decision's candidates' steps
        self.trained: list[int] = []
        self.tables: list[set[str]] = []

    def decide(self, table, unit, held_out, current: Weights, start: Weights, files, *,
               num_cores, settings, seed, log_dir) -> Decision:
        self.decided.append(held_out)
        self.steps_asked.append([x.steps for x in settings])
        self.tables.append(set(table["sample_id"].to_pylist()))
        if held_out in self.provisional_after:
            return Decision("scripted", perturbed(current, seed, 0.01), "scripted win", unit,
                            str(held_out), 0)
        return Decision("current", current, "scripted: no candidate", unit, str(held_out), 0)

    def train(self, files, table, initial: Weights, *, steps, rate, num_cores,
              log_path=None) -> TrainResult:
        self.trained.append(steps)
        self.tables.append(set(table["sample_id"].to_pylist()))
        return TrainResult(perturbed(initial, steps, 0.01), loss=0.0, samples=table.num_rows)


def autotune_on_doubles(run_dir, settings, *, infos: list[DeviceInfo] | None = None,
                        trainer: Trainer | None = None, build_s: float = 0.01):
    """farm.tuning.loop.autotune over synthetic devices (two by default) and builds of
    `build_s`, on a Ray the caller started, with a ScriptedTrainer unless `trainer` is
    given; the pool is shut down after."""
    from farm.execution.pool import DevicePool
    from farm.tuning.loop import autotune

    infos = infos or synthetic_infos(2, seconds=0.01)
    pool = DevicePool.create(infos, SyntheticBuilder(build_s), compile_slots=4,
                             opener=open_synthetic)
    try:
        return autotune(run_dir, settings, cluster=FakeCluster(infos), pool=pool,
                        trainer=trainer or ScriptedTrainer())
    finally:
        pool.shutdown()
